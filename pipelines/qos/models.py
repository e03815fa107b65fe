"""The QoS predictors behind one interface: UL-RW, SL-RW, HL-RW, their baselines and a blend.

Every model maps a training QoSData (NaN = unobserved) to a full users x services
prediction matrix. Names (as the CLI and bench take them):

    UMean, IMean            row / column mean
    UPCC, IPCC, UIPCC       WSRec (Zheng et al.), as in the WS-DREAM reference code:
                            PCC over co-invoked cells centred on overall means, positive
                            PCC only, top-K (10) per predicted cell among those who observed
                            it; UIPCC = lambda UPCC + (1 - lambda) IPCC with lambda = 0.1
    MF                      biased matrix factorisation (ALS), see mf.py
    UL-RW, SL-RW, HL-RW     the location-aware random-walk models (Eqs. 18, 19, 20)
    HL-RW+MF                beyond the paper: beta HL-RW + (1 - beta) MF
    <name>-noloc            any RW model with the location weight and AS-first selection off

Pipeline of one RW side (users for UL-RW, services for SL-RW; HL-RW runs both):

    s      = Eq. 3 / 4 direct similarity (similarity.penalized_euclidean)
    omega  = Eq. 7 location weight (location.omega; 1 when off or unknown)
    M      = Eq. 8 transitions over the graph with weights s * omega
    P*     = Eq. 14 visiting probabilities (one linear solve, randomwalk)
    s*     = Eqs. 15-17 final similarity
    N_K    = top-K per predicted cell, same AS first (section 5.4.1; neighbours)
    Eq. 18 qhat(u,j) = qbar_u + sum_{v in N_K} s*(u,v)(q_vj - qbar_v) / sum s*(u,v)
    Eq. 19 qhat(u,j) = qbar_j + sum_{i in N_K} s*(j,i)(q_ui - qbar_i) / sum s*(j,i)
    Eq. 20 qhat(u,j) = lambda UL-RW + (1 - lambda) SL-RW; a side with no neighbour for the
           cell leaves the weight to the other side (as WSRec's confidence weights do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import time
from dataclasses import dataclass, field, replace

import numpy as np

from pipelines.qos import location, neighbours, randomwalk, similarity
from pipelines.qos.data import Locations, QoSData
from pipelines.qos.mf import BiasedMF

#: Above this many nodes a side's n x n matrices are float32 (halves memory and LAPACK time).
FLOAT32_ABOVE = 1000


@dataclass
class RWConfig:
    """Parameters of the random-walk models (defaults: the paper's alpha and K; the rest chosen on
    validation splits of training data, see the README section)."""

    k: int = 10  # neighbours per predicted cell
    alpha: float = 0.85  # continue-walking probability (Eq. 14)
    lam: float = 0.2  # HL-RW weight of the user side (Eq. 20)
    gamma: float = 10.0  # significance penalty of the direct similarity (Eq. 3/4)
    sigma_scale: float = 0.1  # distance unit of Eq. 3/4 = sigma_scale x std of the observed values
    theta: float = 2.0  # co-invocations at which the direct similarity is fully trusted (Eq. 16)
    min_common: int = 1  # co-invocations needed for an edge
    omega_mode: str = "symmetric"  # Eq. 7 combination: symmetric | neighbour
    location: bool = True  # omega and AS-first selection on (when locations are known)
    as_first: bool = True  # same-AS neighbours first (section 5.4.1)
    graph_top_n: int | None = None  # keep only each node's strongest edges (None: all)
    pool: int | None = None  # candidate pool of the top-K search (None: automatic; exact either way)
    beta: float | None = None  # HL-RW+MF weight of HL-RW (None: chosen on 10 % of the training cells held out)
    parallel_sides: bool = False  # HL-RW: compute the user and service sides in two threads (they overlap on
    #                               idle cores; on this shared 2-core machine it measured 10-20 % slower)


@dataclass
class SideResult:
    pred: np.ndarray  # (targets, columns)
    has: np.ndarray  # cell had at least one neighbour
    info: dict = field(default_factory=dict)


def _dtype(n: int):
    return np.float32 if n > FLOAT32_ABOVE else np.float64


def rw_final_similarity(values: np.ndarray, mask: np.ndarray, loc: Locations | None, cfg: RWConfig,
                        info: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Eqs. 3/4, 7, 8, 14-17 for the rows of `values`: the final similarity s* and the same-AS mask used.

    The n x n intermediates are reused in place (at 5,825 services each is 136 MB in float32).
    """
    info = {} if info is None else info
    n = values.shape[0]
    dt = _dtype(n)
    sigma = cfg.sigma_scale * (float(np.std(values[mask])) if mask.sum() > 1 else 1.0)
    t0 = time.perf_counter()
    s, common = similarity.penalized_euclidean(values, mask, gamma=cfg.gamma, sigma=sigma, min_common=cfg.min_common,
                                               dtype=dt, return_common=True)
    om = location.omega(values, mask, loc, gamma=cfg.gamma, sigma=sigma, mode=cfg.omega_mode,
                        enabled=cfg.location, dtype=dt)
    info["omega"] = om is not None
    if om is not None:
        om *= s  # edge weights a = s * omega (Eq. 8's numerator), in omega's buffer
        a = randomwalk.edge_weights(om, None, cfg.graph_top_n) if cfg.graph_top_n else om
    else:
        a = randomwalk.edge_weights(s, None, cfg.graph_top_n)
    t1 = time.perf_counter()
    symmetric = cfg.omega_mode == "symmetric" or not info["omega"]
    p = randomwalk.visiting_probabilities(a, cfg.alpha, symmetric=symmetric, dtype=dt, overwrite=True)
    del a, om
    t2 = time.perf_counter()
    r = randomwalk.walk_similarity(p, s, inplace=True)
    del p
    phi = randomwalk.trust(common, cfg.theta, inplace=True)
    s_star = randomwalk.final_similarity(s, r, phi, inplace=True)
    del r, phi, common
    info["seconds_similarity"] = round(t1 - t0, 3)
    info["seconds_walk"] = round(t2 - t1, 3)
    same = location.same_as(loc, n) if (cfg.location and cfg.as_first) else None
    info["as_first"] = same is not None
    return s_star, same


def rw_side(values: np.ndarray, mask: np.ndarray, loc: Locations | None, cfg: RWConfig) -> SideResult:
    """One side of the RW models: Eq. 18 on the rows of `values` (pass the transpose for Eq. 19)."""
    info: dict = {}
    s_star, same = rw_final_similarity(values, mask, loc, cfg, info)
    prio = neighbours.priorities(s_star, same)
    base = similarity.row_means(values, mask)
    t0 = time.perf_counter()
    pred, has = neighbours.predict(s_star, prio, values, mask, base, cfg.k, cfg.pool)
    info["seconds_neighbours"] = round(time.perf_counter() - t0, 3)
    return SideResult(pred, has, info)


def pcc_side(values: np.ndarray, mask: np.ndarray, k: int = 10, pool: int | None = None) -> SideResult:
    """UPCC on the rows of `values` (IPCC: pass the transpose)."""
    base = similarity.row_means(values, mask)
    w = similarity.pcc(values, mask, dtype=_dtype(values.shape[0]), centre=base)
    prio = neighbours.priorities(w)
    pred, has = neighbours.predict(w, prio, values, mask, base, k, pool)
    return SideResult(pred, has)


def hybrid(user: SideResult, service: SideResult, lam: float) -> np.ndarray:
    """Eq. 20 with the no-neighbour rule: a side that found no neighbour for the cell cedes its weight."""
    up, sp = user.pred, service.pred.T
    uh, sh = user.has, service.has.T
    wu = np.where(uh & ~sh, 1.0, np.where(sh & ~uh, 0.0, lam))
    return wu * up + (1.0 - wu) * sp


class Model(ABC):
    """A named predictor: fit_predict(train) -> full matrix; `info` says what ran (e.g. omega on/off)."""

    name = "model"

    def __init__(self, cfg: RWConfig | None = None):
        self.cfg = cfg or RWConfig()
        self.info: dict = {}

    @abstractmethod
    def fit_predict(self, data: QoSData) -> np.ndarray:
        """The full predicted matrix from the observed cells of `data`."""


class UMean(Model):
    name = "UMean"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return np.repeat(similarity.row_means(data.values, mask)[:, None], data.shape[1], axis=1)


class IMean(Model):
    name = "IMean"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return np.repeat(similarity.row_means(data.values.T, mask.T)[None, :], data.shape[0], axis=0)


class UPCC(Model):
    name = "UPCC"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return pcc_side(data.values, mask, self.cfg.k, self.cfg.pool).pred


class IPCC(Model):
    name = "IPCC"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return pcc_side(data.values.T, mask.T, self.cfg.k, self.cfg.pool).pred.T


class UIPCC(Model):
    name = "UIPCC"
    lam = 0.1  # WS-DREAM reference value

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        u = pcc_side(data.values, mask, self.cfg.k, self.cfg.pool).pred
        s = pcc_side(data.values.T, mask.T, self.cfg.k, self.cfg.pool).pred.T
        return self.lam * u + (1 - self.lam) * s


class MF(Model):
    name = "MF"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return BiasedMF().fit_predict(data.values, mask)


class ULRW(Model):
    name = "UL-RW"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        side = rw_side(data.values, mask, data.users, self.cfg)
        self.info = {"users": side.info}
        return side.pred


class SLRW(Model):
    name = "SL-RW"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        side = rw_side(data.values.T, mask.T, data.services, self.cfg)
        self.info = {"services": side.info}
        return side.pred.T


class HLRW(Model):
    name = "HL-RW"

    def sides(self, data) -> tuple[SideResult, SideResult]:
        mask = ~np.isnan(data.values)
        args_u = (data.values, mask, data.users, self.cfg)
        args_s = (data.values.T, mask.T, data.services, self.cfg)
        if self.cfg.parallel_sides:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=2) as pool:
                fs = pool.submit(rw_side, *args_s)
                fu = pool.submit(rw_side, *args_u)
                u, s = fu.result(), fs.result()
        else:
            u, s = rw_side(*args_u), rw_side(*args_s)
        self.info = {"users": u.info, "services": s.info}
        return u, s

    def fit_predict(self, data):
        u, s = self.sides(data)
        return hybrid(u, s, self.cfg.lam)


class HLRWMF(HLRW):
    """Beyond the paper: HL-RW and the MF baseline err differently (local neighbours vs global factors).

    qhat = beta HL-RW + (1 - beta) MF. With beta=None, beta is chosen (grid 0, 0.1, ..., 1) by
    fitting both on 90 % of the training cells and scoring the other 10 %; then both are refitted
    on all of them. That validation fit roughly doubles the time.
    """

    name = "HL-RW+MF"
    holdout = 0.1

    def _blend_parts(self, data) -> tuple[np.ndarray, np.ndarray]:
        hl = hybrid(*self.sides(data), self.cfg.lam)
        mask = ~np.isnan(data.values)
        mf = np.maximum(BiasedMF().fit_predict(data.values, mask), 0.0)
        return hl, mf

    def fit_predict(self, data):
        beta = self.cfg.beta
        if beta is None:
            mask = ~np.isnan(data.values)
            cells = np.flatnonzero(mask)
            rng = np.random.default_rng(len(cells))
            held = rng.choice(cells, size=max(1, int(len(cells) * self.holdout)), replace=False)
            inner = data.values.copy().ravel()
            inner[held] = np.nan
            hl, mf = self._blend_parts(replace(data, values=inner.reshape(data.shape)))
            actual = data.values.ravel()[held]
            hl_h, mf_h = hl.ravel()[held], mf.ravel()[held]
            grid = np.linspace(0.0, 1.0, 11)
            errs = [np.abs(b * hl_h + (1 - b) * mf_h - actual).mean() for b in grid]
            beta = float(grid[int(np.argmin(errs))])
        hl, mf = self._blend_parts(data)
        self.info = {**self.info, "beta": beta}
        return beta * hl + (1 - beta) * mf


MODELS: dict[str, type[Model]] = {
    m.name: m for m in (UMean, IMean, UPCC, IPCC, UIPCC, MF, ULRW, SLRW, HLRW, HLRWMF)
}
RW_MODELS = ("UL-RW", "SL-RW", "HL-RW", "HL-RW+MF")


def make(name: str, cfg: RWConfig | None = None) -> Model:
    """A model by name; '<RW model>-noloc' switches the location weight and AS-first selection off."""
    cfg = cfg or RWConfig()
    base = name
    if name.endswith("-noloc"):
        base = name[: -len("-noloc")]
        if base not in RW_MODELS:
            raise ValueError(f"{name}: -noloc applies to {', '.join(RW_MODELS)}")
        cfg = replace(cfg, location=False)
    if base not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)} (RW models also as <name>-noloc)")
    model = MODELS[base](cfg)
    model.name = name
    return model
