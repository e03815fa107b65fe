"""QoS prediction for service recommendation: location-aware random walk (UL-RW, SL-RW, HL-RW).

Two variants of each: the paper's as published (``-paper``, also the plain names) and the one
tuned here (``-tuned``); models.DEPARTURES lists how and why they differ.

Predicts the response time / throughput a user would get from services it has not invoked,
from the sparse invocation record and the network location (AS, country) of users and
services, and recommends each user's best services.

Modules (one idea each):
  data          WS-DREAM format: matrices (-1 / empty = unobserved), userlist / wslist, index files, gzip
  generate      seeded full-size matrices on the real WS-DREAM locations, calibrated to the published means
  similarity    direct similarity (Eq. 3 / 4 as published, or with the tuned unit / shrinkage / centring), PCC
  location      the location weight omega (Eq. 7: mean, or the tuned geometric mean) and same-AS masks
  randomwalk    similarity graph, transitions (Eq. 8), visiting probabilities P* (Eq. 14), final similarity (15-17)
  neighbours    top-K per predicted cell, same AS first (section 5.4.1); Eq. 18/19 weighted mean or deviations
  mf            biased matrix factorisation (ALS) baseline
  models        UMean, IMean, UPCC, IPCC, UIPCC, LACF, MF, UL-/SL-/HL-RW-paper and -tuned, HL-RW+MF; DEPARTURES
  ablation      from the paper's HL-RW, one departure at a time (bench/qos.py --ablation)
  sensitivity   lambda and K sweeps (the paper's Fig. 6-7)
  plot          PNG line charts with numpy + zlib (no plotting library is locked)
  evaluate      the paper's protocol: training density, test on the rest, MAE / NMAE / seconds over seeds
  store         store schema qos: observations, predictions, recommendations, runs, model_choice (replaced by key)
  quality       the Great Expectations gate on observations
  refresh       the qos_random_walk_refresh DAG's steps (validate the candidates, publish the best)
  cli           `osr qos eval | generate | ingest | refresh`
"""
