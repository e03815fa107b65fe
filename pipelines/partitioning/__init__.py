"""Partitioned aggregate-profile clustering (Abbasoglu, Gedik, Ferhatosmanoglu: "Aggregate Profile
Clustering for Streaming Analytics"): the offline half, pure functions the stream builds on.

  workload       seeded CDR generator of sec. 6.1.2 (types, Zipf, spread, shifts)
  profiles       windowed aggregate profiles (per-customer JSON state, and a vectorized form)
  osr_events     OSR purchases / pushes as profile updates
  clustering     the algorithm A of sec. 3.2 (GMM, k by BIC)
  microclusters  per-node k-means summaries <o, r, p, m, l>
  repartition    the greedy of Algorithm 1 with eqs. 5-9
  hashing        consistent hashing (p_0 and the baseline)
  quality        eqs. 1-4
  trigger        the adaptive NMI trigger of sec. 4.4
  routing        versioned routing table and its diffs
  simulate       the offline driver used by bench/repartition.py
and the online half (streams/agents/profiles.py calls these):
  messages       the records on profiles.raw / profiles.updates / control.routing
  migration      router and node logic: versioned routing, barriers, buffering, replay, dedup
  summaries      a node's micro-cluster summaries (+ trigger NMI); the master's gather
  planner        trigger + greedy plan over the summaries, its qualities
  coordinator    control.routing on the broker: announce, barriers, wait for Installed acks
  runs           collect -> decide -> apply -> record (the DAG's tasks, `osr repartition`)
  live           produce CDRs, drain, read the table's changelog, compare with a recomputation
  gaps           input offsets Faust committed unprocessed: found by watermark, read back from the broker
  acks           a batch's bounded ack wait: a wedged producer ends the worker, a broker outage waits
"""
