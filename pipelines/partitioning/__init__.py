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
"""
