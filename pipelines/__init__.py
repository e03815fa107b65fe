"""OSR platform logic: everything the stream (streams/) and the batch (dags/) call.

This package never imports Faust or Airflow, so the same code runs in a Faust
agent, an Airflow task, a backfill and a test.
"""

__version__ = "0.1.0"
