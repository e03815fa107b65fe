"""The feature / recommendation store (a DuckLake): connection, migrations and idempotent writes (`db`),
the sink that writes stream results (`sink`), and the population loader with history backfill
(`population_loader`)."""
