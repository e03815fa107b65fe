"""QoS prediction for service recommendation: location-aware random walk (UL-RW, SL-RW, HL-RW).

Predicts the response time / throughput a user would get from services it has not invoked,
from the sparse invocation record and the network location (AS, country) of users and
services, and recommends each user's best services.

Modules (one idea each):
  data          WS-DREAM format: matrices (-1 / empty = unobserved), userlist / wslist, index files, gzip
  generate      seeded full-size matrices on the real WS-DREAM locations, calibrated to the published means
  similarity    direct similarity (Eq. 3 / 4, penalised mean-centred Euclidean) and the baselines' PCC
  location      the location weight omega (Eq. 7) and same-AS masks
  randomwalk    similarity graph, transitions (Eq. 8), visiting probabilities P* (Eq. 14), final similarity (15-17)
  neighbours    top-K per predicted cell, same AS first (section 5.4.1), and the weighted-deviation prediction
  mf            biased matrix factorisation (ALS) baseline
  models        UMean, IMean, UPCC, IPCC, UIPCC, MF, UL-RW (Eq. 18), SL-RW (19), HL-RW (20), HL-RW+MF
  evaluate      the paper's protocol: training density, test on the rest, MAE / NMAE / seconds over seeds
  store         store schema qos: observations, predictions, recommendations, runs (replaced by key)
  quality       the Great Expectations gate on observations
  refresh       the qos_random_walk_refresh DAG's steps
  cli           `osr qos eval | generate | ingest | refresh`
"""
