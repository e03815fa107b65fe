"""Analyst SQL in layers (sql/analytics: staging views that only rename and cast, marts built on them),
their declared tests, and the report folder with plots and Data Docs.

Why plain views and not dbt: the store is a DuckLake attached per process under a writer lock
(pipelines.store.db), which dbt-duckdb would have to re-create in its own profile, and the lock
file locks no dbt package. Views applied by `views.apply_views` live in the lake's `analytics`
schema, so every process that attaches the store (`osr query`, a notebook, DuckDB's CLI) sees them.
"""
