"""partition_for_key must agree with the producers' partitioner, or a person's state released by a
tick would be written to another partition's changelog than their records."""

from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from pipelines.ingest.kafka_clients import murmur2, partition_for_key


def test_murmur2_matches_the_kafka_client_implementation():
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"u00001", b"u00001-watch", "ü-ß".encode(), bytes(range(256))]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) & 0xFFFFFFFF for k in keys]


def test_partition_for_key_is_in_range_and_spreads_people():
    parts = [partition_for_key(f"u{i:05d}".encode(), 12) for i in range(1200)]
    assert min(parts) >= 0 and max(parts) <= 11
    assert len(set(parts)) == 12
