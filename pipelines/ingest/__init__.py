"""Getting uploads in: validation of an upload (`validation`), the producer that streams a
population into sensor.raw (`producer`), shared confluent-kafka settings and the model
announcement (`kafka_clients`), and consumer-group lag (`lag`)."""
