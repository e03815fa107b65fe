"""Local services the platform runs on — a Kafka-compatible broker, topics, Airflow, Dask — installed,
started, checked and stopped by the project's own code (see infra/README.md).

Modules: processes (pid-file discipline), kafka_local, tansu_local, broker (OSR_BROKER dispatch),
topics, airflow_local, dask_cluster, mosquitto_local (the MQTT broker and the MQTT bridge process).
Their commands (`osr services` / `osr topics`) are in pipelines/ops/commands/services.py.
"""
