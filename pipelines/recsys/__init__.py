"""Recommendations: ALS (explicit and implicit feedback) and DSGD on Dask, with their
numpy oracle, the `implicit` reference, top-N lists, MovieLens loading and metrics.

Modules (one idea each):
  ratings            sparse user x item matrices and the seeded random train/test split
  movielens          MovieLens 100K ratings (sha256-checked) and the fixed seeded 80/20 split
  metrics            RMSE, precision@k, MAP@k (the ranking protocol is documented there)
  als_reference      direct per-row numpy ALS: the correctness oracle, and the loss functions
  normal_equations   the whole-block ALS kernel: packed Gram matrices by sparse products, batched SPD solves
  dask_als           ALS on Dask: broadcast and block methods
  dsgd               DSGD (Gemulla et al. 2011) on Dask
  implicit_reference the `implicit` library's ALS behind the same output shape
  topn               top-N unseen items per user as a DataFrame
  synthetic          latent-factor interactions with popularity skew (also the population's purchase history)
  cluster            the Dask client (the platform's helper when present) and worker allocator tuning
  cli                `osr recsys evaluate`
"""
