"""The Airflow DAG files, one pipeline per file; shared pieces in dags.common (imported by package path)."""
