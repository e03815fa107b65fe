"""What the DAG files share: default arguments and the publish tail of the model DAGs."""
