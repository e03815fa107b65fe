"""Synthetic user x item interactions with a real latent structure and popularity skew.

Used for the 20M-interaction benchmark and as the synthetic population's purchase history.

The generative model (all from numpy default_rng(seed), so a seed fixes the data):

* `n_clusters` taste clusters with centres c_g ~ N(0, I / sqrt(rank)) in R^rank; each item
  belongs to one cluster (uniformly) and has factor v_i = c_{g(i)} + N(0, item_spread^2 I / sqrt(rank)).
* Users have factors u ~ N(0, I / sqrt(rank)), so u . c_g is about N(0, 1).
* Item popularity is Zipf-like: pop_i = rank_i ** -popularity_exponent over a random order.
* User activity is log-normal(0, activity_sigma): a user's share of the interactions.
* A user's interaction picks an item with probability proportional to
  pop_i * exp(affinity * u . c_{g(i)}): first the cluster g (prob. proportional to the
  cluster's total popularity times exp(affinity * u . c_g)), then an item of g by popularity.
  This is exactly that distribution, drawn in O(1) vectorised steps per interaction.
* Each (user, item) pair appears once: users are drawn 30 % more often than their share,
  repeats dropped, any shortfall topped up by fresh draws, and the distinct pairs thinned
  at random to exactly n_interactions.
* rating = clip(round(3.5 + z_ui + N(0, rating_noise^2)), 1, 5) with z the standardised
  u . v_i over the drawn pairs: an explicit 1-5 score with the same latent structure;
  implicit-feedback models use it as the interaction strength.

25M interactions over 140k users x 27k items took 15-23 s here (one core, shared machine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_CHUNK = 1 << 21


def _sorted_unique_mask(keys_sorted: np.ndarray) -> np.ndarray:
    mask = np.empty(len(keys_sorted), dtype=bool)
    if len(mask):
        mask[0] = True
        np.not_equal(keys_sorted[1:], keys_sorted[:-1], out=mask[1:])
    return mask


def latent_factor_interactions(n_users: int, n_items: int, n_interactions: int, rank: int = 8, seed: int = 0, *,
                               n_clusters: int | None = None, popularity_exponent: float = 0.9,
                               activity_sigma: float = 1.0, affinity: float = 2.0, item_spread: float = 0.5,
                               rating_noise: float = 0.5, return_factors: bool = False):
    """Distinct (user_id, item_id, rating) interactions, sorted by user then item.

    Returns a DataFrame with int32 user_id in [0, n_users), int32 item_id in [0, n_items) and
    float32 rating in {1..5}; with return_factors=True, (frame, user_factors, item_factors)
    where the factors are the true u and v of the model (see the module docstring).
    """
    if n_users < 1 or n_items < 1 or rank < 1:
        raise ValueError("n_users, n_items and rank must be positive")
    if not 0 <= n_interactions <= n_users * n_items // 2:
        raise ValueError("n_interactions must be between 0 and half of n_users * n_items")
    rng = np.random.default_rng(seed)
    G = n_clusters or 4 * rank
    scale = rank ** -0.25  # entries N(0, 1/sqrt(rank)) so that u . c is about N(0, 1)
    centres = (rng.standard_normal((G, rank)) * scale).astype(np.float32)
    item_cluster = rng.integers(0, G, n_items)
    V = centres[item_cluster] + (rng.standard_normal((n_items, rank)) * scale * item_spread).astype(np.float32)
    U = (rng.standard_normal((n_users, rank)) * scale).astype(np.float32)
    pop = np.arange(1, n_items + 1, dtype=np.float64) ** -popularity_exponent
    pop = pop[rng.permutation(n_items)]

    # item within cluster by popularity: items ordered by cluster, key = cluster + cumulative share
    order = np.argsort(item_cluster, kind="stable")
    cl_sorted = item_cluster[order]
    mass = np.bincount(item_cluster, weights=pop, minlength=G)
    cum = np.cumsum(pop[order])
    start = np.searchsorted(cl_sorted, np.arange(G))
    before = np.concatenate([[0.0], cum])[start]
    within = (cum - before[cl_sorted]) / np.where(mass[cl_sorted] > 0, mass[cl_sorted], 1.0)
    item_key = cl_sorted + np.minimum(within, 1.0 - 1e-12)

    # cluster given user: softmax over clusters of log(mass) + affinity * u . c
    logits = affinity * (U @ centres.T).astype(np.float64) + np.log(np.maximum(mass, 1e-300))[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)

    activity = rng.lognormal(0.0, activity_sigma, n_users)
    activity /= activity.sum()
    cluster_ids = np.tile(np.arange(G, dtype=np.int64), n_users)

    def draw(per_user: np.ndarray) -> np.ndarray:
        """Sorted int64 keys user * n_items + item, per_user[u] draws for user u (with repeats)."""
        per_cluster = rng.multinomial(per_user, probs).ravel()  # (users x clusters) counts, user-major
        users = np.repeat(np.repeat(np.arange(n_users, dtype=np.int64), G), per_cluster)
        g = np.repeat(cluster_ids, per_cluster)
        out = np.empty(len(g), dtype=np.int64)
        for s in range(0, len(g), _CHUNK):
            gs = g[s:s + _CHUNK]
            pos = np.searchsorted(item_key, gs + rng.random(len(gs)), side="right")
            out[s:s + _CHUNK] = users[s:s + _CHUNK] * n_items + order[np.minimum(pos, n_items - 1)]
        out.sort()
        return out[_sorted_unique_mask(out)]

    cap = max(1, n_items // 2)
    want = np.minimum(rng.multinomial(n_interactions, activity), cap)
    # oversample, so repeats (a heavy user drawing a popular item twice) rarely leave a deficit
    keys = draw(np.minimum(np.ceil(want * 1.3).astype(np.int64), cap))
    while len(keys) < n_interactions:
        have = np.bincount(keys // n_items, minlength=n_users)
        room = np.maximum(cap - have, 0)
        if room.sum() == 0:
            raise ValueError("cannot place that many distinct interactions")
        deficit = n_interactions - len(keys)
        extra = rng.multinomial(2 * deficit + 16, room * activity / np.sum(room * activity))
        new = draw(np.minimum(extra, room))
        keys = np.concatenate([keys, new])
        keys.sort(kind="stable")  # two sorted runs: a merge
        keys = keys[_sorted_unique_mask(keys)]
    if len(keys) > n_interactions:
        # keep a uniformly random n_interactions of the distinct pairs (order preserved)
        r = rng.random(len(keys))
        threshold = np.partition(r, n_interactions - 1)[n_interactions - 1] if n_interactions else -1.0
        keys = keys[r <= threshold][:n_interactions]
    user_id = (keys // n_items).astype(np.int32)
    item_id = (keys % n_items).astype(np.int32)
    score = np.empty(len(keys), dtype=np.float32)
    for s in range(0, len(keys), _CHUNK):
        u, i = user_id[s:s + _CHUNK], item_id[s:s + _CHUNK]
        score[s:s + _CHUNK] = np.einsum("nk,nk->n", U[u], V[i])
    # chosen items lean towards high u . v: standardise over the drawn pairs, centre on 3.5
    mean, std = (float(score.mean()), float(score.std()) or 1.0) if len(score) else (0.0, 1.0)
    score = (score - mean) / std + rng.standard_normal(len(score)).astype(np.float32) * rating_noise
    rating = np.clip(np.rint(3.5 + score), 1, 5).astype(np.float32)
    df = pd.DataFrame({"user_id": user_id, "item_id": item_id, "rating": rating})
    if return_factors:
        return df, U, V
    return df
