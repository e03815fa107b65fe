"""The nightly retrain of the OSR models, one function per Airflow task (`nightly`), the rule that
decides whether a candidate goes live (`promotion`), and the OSR lift over state-blind pushes (`lift`)."""
