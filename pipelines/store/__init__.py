"""The DuckDB feature / recommendation store: connection, migrations, idempotent writes."""
