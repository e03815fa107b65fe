"""Direct similarity between the rows of a sparse QoS matrix, all pairs at once.

Two measures, both computed with three or four dense matrix products (BLAS),
never with a Python loop over pairs:

- ``penalized_euclidean`` -- the random-walk models' direct similarity (the paper's
  Eq. 3 for users; Eq. 4 is the same on the transposed matrix for services);
- ``pcc`` -- the Pearson correlation of the UPCC / IPCC / UIPCC baselines, as in the
  WS-DREAM reference code (Zheng et al., WSRec).

The paper's Eq. 3 (extracted text, operators lost; our reading):

    sim(u,v) = 1 / (1 + sqrt( 1/|S_uv| * sum_{i in S_uv} ((q_ui - qbar_i) - (q_vi - qbar_i))^2 ))

with qbar_i "the average of the QoS values received by u and v invoking i". Readings taken:

- the lost operator between the two brackets is a minus (it is a distance), and the square
  root is there ("the reciprocal of the Euclidean distance", Eq. 1 -> 2). Then
  (q_ui - qbar_i) - (q_vi - qbar_i) = q_ui - q_vi for *any* qbar_i shared by both terms:
  Eq. 3 equals Eq. 2 in value, whatever the centring. ``centring=False`` is that reading
  (the paper's model); ``root=False`` drops the square root (a documented alternative);
- Eq. 4 is the same on the transposed matrix (services as rows, users as columns).

The tuned model departs from it in three switchable ways (each one an ablation row):

    d(u,v) = sqrt( 1/|I_uv| * sum ((q_ui - qbar_u) - (q_vi - qbar_v))^2 )   centring=True: each row's
                                                                            own mean over all it observed
    s(u,v) = min(|I_uv|, gamma)/gamma * 1 / (1 + d(u,v) / sigma)             gamma > 1: significance
                                                                            shrinkage; sigma: a unit

- per-node centring: a user who is uniformly slower (far away) still matches the *shape* of another;
- sigma (the tuned model: 0.1 x the standard deviation of the observed values) makes the measure
  unit-free, so response time (s) and throughput (kbps) behave alike; the paper has none (sigma = 1);
- gamma shrinks a similarity backed by fewer than gamma co-invoked services (the paper's own
  defect 2 of Eq. 2, which its Eq. 3 as printed does not address); gamma = 1 switches it off;
- pairs with fewer than ``min_common`` co-invoked services get 0 (no edge).
"""

from __future__ import annotations

import numpy as np


def row_means(values: np.ndarray, mask: np.ndarray, fallback: float | None = None) -> np.ndarray:
    """Mean of each row over its observed cells; rows with none get `fallback` (default: the global mean)."""
    cnt = mask.sum(axis=1)
    tot = np.where(mask, values, 0.0).sum(axis=1)
    if fallback is None:
        fallback = float(values[mask].mean()) if mask.any() else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), fallback)


def _pair_sums(values: np.ndarray, mask: np.ndarray, centre: np.ndarray, dtype) -> tuple:
    """Per pair of rows over their common observed columns: count, sum x_u^2 (as A[u,v]) and sum x_u x_v."""
    w = mask.astype(dtype)
    x = np.where(mask, values - centre[:, None], 0.0).astype(dtype)
    common = w @ w.T
    sq = (x * x) @ w.T  # sq[u, v] = sum over columns v observed of x_u^2 (x_u is 0 where u did not observe)
    cross = x @ x.T
    return common, sq, cross


def penalized_euclidean(values: np.ndarray, mask: np.ndarray, *, gamma: float = 10.0, sigma: float | None = None,
                        min_common: int = 1, dtype=np.float64, centre: np.ndarray | None = None,
                        return_common: bool = False, centring: bool = True, root: bool = True):
    """Eq. 3 (rows = users) / Eq. 4 (pass the transposed matrix: rows = services); 0 on the diagonal.

    The paper's form: centring=False, gamma=1, sigma=1. The tuned form: the defaults with sigma given.

    With return_common, also the co-invocation counts |I_uv| (the random walk's Eq. 16 needs them).
    Works in place on n x n buffers: at 5,825 services each is 136 MB (float32).
    """
    if not centring:
        centre = np.zeros(values.shape[0])
    elif centre is None:
        centre = row_means(values, mask)
    if sigma is None:
        sigma = float(np.std(values[mask])) if mask.sum() > 1 else 1.0
    sigma = sigma if sigma > 0 else 1.0
    common, sq, ssd = _pair_sums(values, mask, centre, dtype)
    ssd *= -2.0  # ssd = sq + sq^T - 2 cross = sum over I_uv of (x_u - x_v)^2
    ssd += sq
    ssd += sq.T
    del sq
    np.maximum(ssd, 0.0, out=ssd)
    scale = np.maximum(common, 1.0)
    scale *= sigma * sigma
    ssd /= scale  # (d / sigma)^2
    if root:
        np.sqrt(ssd, out=ssd)
    ssd += 1.0
    sim = np.reciprocal(ssd, out=ssd)
    if gamma and gamma > 1:
        np.minimum(common, gamma, out=scale)
        scale *= 1.0 / gamma
        sim *= scale
    if min_common > 1:
        sim[common < min_common] = 0.0
    else:  # no co-invoked column -> 0: multiply by min(count, 1) (cheaper than a boolean scatter)
        np.minimum(common, 1.0, out=scale)
        sim *= scale
    del scale
    np.fill_diagonal(sim, 0.0)
    sim = sim.astype(dtype, copy=False)
    return (sim, common) if return_common else sim


def pcc(values: np.ndarray, mask: np.ndarray, *, min_common: int = 2, positive_only: bool = True,
        dtype=np.float64, centre: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation over co-observed columns, centred on each row's overall mean (WS-DREAM reference).

    PCC(u,v) = sum_{i in I_uv} x_ui x_vi / sqrt(sum_{I_uv} x_ui^2 * sum_{I_uv} x_vi^2), x = q - qbar_row;
    pairs with fewer than `min_common` co-observed columns, or (by default) PCC <= 0, get 0.
    """
    if centre is None:
        centre = row_means(values, mask)
    common, sq, cross = _pair_sums(values, mask, centre, dtype)
    denom = sq * sq.T
    del sq
    np.sqrt(np.maximum(denom, 0.0, out=denom), out=denom)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), 0.0)
    sim[common < min_common] = 0.0
    if positive_only:
        sim[sim < 0] = 0.0
    np.fill_diagonal(sim, 0.0)
    return np.clip(sim, -1.0, 1.0).astype(dtype, copy=False)
