"""Propensity E(item | state): classifiers of purchase / redemption from the state and item attributes.

All share base.PropensityModel (fit(X, y) / predict_proba(X) / propensity(X) on a pandas
DataFrame, categorical columns declared or inferred):
  lgbm           LightGBM, in-process or Dask-distributed (DaskLGBMClassifier)
  sgd_logistic   logistic regression by synchronous mini-batch SGD across Dask partitions
  knn_context    k-nearest-neighbour context classifier (coupon-study attributes)
  coupon         seeded synthetic coupon-redemption data with the study's attributes
  evaluate       hold-out AUC and log-loss for each model
  cli            `osr propensity compare`
"""

from pipelines.propensity.base import PropensityModel
from pipelines.propensity.coupon import COUPON_FEATURES, COUPON_ORDINAL, COUPON_TARGET, coupon_context_dataset
from pipelines.propensity.knn_context import KNNContextPropensity
from pipelines.propensity.lgbm import LightGBMPropensity
from pipelines.propensity.sgd_logistic import SGDLogisticPropensity

__all__ = [
    "PropensityModel", "LightGBMPropensity", "SGDLogisticPropensity", "KNNContextPropensity",
    "coupon_context_dataset", "COUPON_FEATURES", "COUPON_ORDINAL", "COUPON_TARGET",
]
