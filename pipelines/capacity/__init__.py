"""Capacity planning for the stream, as a MAPE-K loop: monitor (broker offsets, worker timings) ->
analyze (burstiness, smoothed latency, SLA risk) -> plan (predictive + reactive sizing from a queueing
model, hysteresis) -> execute (start/stop Faust workers through injected effectors), every decision
recorded with its reason in the store's `ops` schema.

No Faust or Airflow here: the effectors that start real workers are passed in by the operator
package (pipelines.ops.commands.capacity) or a bench/test, so the same planner runs in a DAG, a
simulation and a live loop."""
