"""The Faust stream app: thin agents that call `pipelines` functions."""
