"""The QoS predictors behind one interface: the paper's UL-RW / SL-RW / HL-RW, the tuned variant, baselines.

Every model maps a training QoSData (NaN = unobserved) to a full users x services
prediction matrix. Names (as the CLI, the bench and the refresh DAG take them):

    UMean, IMean            row / column mean
    UPCC, IPCC, UIPCC       WSRec (Zheng et al.), as in the WS-DREAM reference code:
                            PCC over co-invoked cells centred on overall means, positive
                            PCC only, top-K (10) per predicted cell among those who observed
                            it; UIPCC = lambda UPCC + (1 - lambda) IPCC with lambda = 0.1
    LACF                    location-aware CF (Tang et al. 2012), see class LACF
    MF                      biased matrix factorisation (ALS), see mf.py
    UL-RW-paper, SL-RW-paper, HL-RW-paper
                            the paper's Eqs. 3/4, 7, 8, 14, 15-17, 18/19, 20 as published, with its
                            parameters (K = 5, lambda = 0.6 for response time, 0.9 for throughput);
                            UL-RW, SL-RW, HL-RW are the same models (the paper's names)
    UL-RW-tuned, SL-RW-tuned, HL-RW-tuned
                            the variant tuned on validation splits here: it departs from the paper
                            in the ways DEPARTURES lists (each one an ablation row, bench/qos.py)
    HL-RW+MF                beyond the paper: beta HL-RW-tuned + (1 - beta) MF
    <RW name>-noloc         the location weight and AS-first selection off

Pipeline of one RW side (users for UL-RW, services for SL-RW; HL-RW runs both):

    s      = Eq. 3 / 4 direct similarity (similarity.penalized_euclidean)
    omega  = Eq. 7 location weight (location.omega; 1 when off or unknown)
    M      = Eq. 8 transitions over the graph with weights s * omega
    P*     = Eq. 14 visiting probabilities (one linear solve, randomwalk)
    s*     = Eqs. 15-17 final similarity (randomwalk.paper_similarity; tuned: the trust mix)
    N_K    = top-K per predicted cell, same AS first (section 5.4.1; neighbours)
    Eq. 18 qhat(u,j) = sum_{v in N_K} s*(u,v) q_vj / sum s*(u,v)      (tuned: qbar_u + deviations)
    Eq. 19 the same on services
    Eq. 20 qhat(u,j) = lambda UL-RW + (1 - lambda) SL-RW; a side with no neighbour for the
           cell leaves the weight to the other side (the paper is silent; WSRec's rule).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from pipelines.qos import location, neighbours, randomwalk, similarity
from pipelines.qos.data import Locations, QoSData
from pipelines.qos.mf import BiasedMF

#: Above this many nodes a side's n x n matrices are float32 (halves memory and LAPACK time).
FLOAT32_ABOVE = 1000


#: The paper's lambda (section 6.2 and Fig. 6: 0.6 for response time; 0.9 optimal for throughput).
PAPER_LAMBDA = {"rt": 0.6, "tp": 0.9}


@dataclass
class RWConfig:
    """Parameters of the random-walk models. The defaults are the tuned variant; RWConfig.paper() is the
    paper's. Every field the two differ in is one entry of DEPARTURES."""

    k: int = 10  # neighbours per predicted cell (paper: 5)
    alpha: float = 0.85  # continue-walking probability (Eq. 14; the paper's, after Page et al.)
    lam: float | None = 0.2  # HL-RW weight of the user side (Eq. 20); None: PAPER_LAMBDA by metric
    gamma: float = 10.0  # significance shrinkage of the direct similarity (1 = none, the paper)
    sigma_scale: float | None = 0.1  # distance unit = sigma_scale x std of the observed values (None: 1, the paper)
    centring: bool = True  # per-node centring of the direct similarity (paper: its centring cancels -> False)
    root: bool = True  # the square root of Eq. 1-3 (Euclidean distance); False: mean squared difference
    theta: float = 2.0  # trust mix: co-invocations at which s is fully trusted (final_form "trust" only)
    min_common: int = 1  # co-invocations needed for an edge
    omega_mode: str = "geometric"  # Eq. 7 combination: mean (paper) | geometric | neighbour
    final_form: str = "trust"  # final similarity: paper (Eqs. 15-17) | trust | direct (no walk)
    phi_form: str = "ratio"  # Eq. 15: ratio s / P* (the prose) | product (the other reading)
    predict_form: str = "deviation"  # Eqs. 18/19: mean (paper) | deviation (mean-centred)
    scope: str = "cell"  # neighbour set per predicted cell | per node (section 5.4.1 literally)
    location: bool = True  # omega and AS-first selection on (when locations are known)
    omega: bool = True  # the location weight alone (Eq. 7; ablation: omega off, AS-first kept)
    as_first: bool = True  # same-AS neighbours first (section 5.4.1; the paper's and the tuned)
    graph_top_n: int | None = None  # keep only each node's strongest edges (None: all)
    pool: int | None = None  # candidate pool of the top-K search (None: automatic; exact either way)
    beta: float | None = None  # HL-RW+MF weight of HL-RW (None: chosen on 10 % of the training cells held out)
    parallel_sides: bool = False  # HL-RW: compute the user and service sides in two threads

    @staticmethod
    def paper() -> "RWConfig":
        """The paper's model as published (every ambiguous reading at the default documented in its module)."""
        return RWConfig(k=5, lam=None, gamma=1.0, sigma_scale=None, centring=False, omega_mode="mean",
                        final_form="paper", predict_form="mean")

    @staticmethod
    def tuned() -> "RWConfig":
        return RWConfig()

    def lam_for(self, metric: str) -> float:
        return PAPER_LAMBDA.get(metric, PAPER_LAMBDA["rt"]) if self.lam is None else self.lam


#: The tuned variant's departures from the paper: (name, field, why). Switching one on in the paper's
#: config is one row of the ablation (bench/qos.py --ablation); all of them on is the tuned model.
DEPARTURES: tuple[tuple[str, str, str], ...] = (
    ("sigma unit", "sigma_scale", "Eq. 3 in raw units: 1/(1+d) saturates for throughput (kbps) and is nearly flat for "
                                  "response time; a unit of 0.1 std makes it unit-free"),
    ("shrinkage", "gamma", "the paper's own defect 2 of Eq. 2 (few co-invoked services -> unreliable); its Eq. 3 as "
                           "printed does not address it; gamma = 10 shrinks such pairs"),
    ("centring", "centring", "Eq. 3's pair-mean centring cancels; per-node centring compares shapes, so a uniformly "
                             "slower (far) user still matches"),
    ("omega geometric", "omega_mode", "geometric instead of arithmetic mean of the two nodes' location weights "
                                      "(one atypical node lowers the pair's weight more)"),
    ("final trust mix", "final_form", "s* = phi s + (1 - phi) r with phi = min(|I_uv|, theta)/theta: keep the measured "
                                      "similarity where it is backed, borrow the walk's where it is not"),
    ("deviation prediction", "predict_form", "mean-centred deviations (Resnick) instead of a weighted mean of raw "
                                             "values: removes the neighbours' own offsets"),
    ("K = 10", "k", "the WSRec / WS-DREAM convention; more neighbours average more noise away"),
    ("lambda = 0.2", "lam", "chosen on validation splits of the real block's training cells, where the user side has "
                            "no locations"),
)


def departed(field_name: str, base: RWConfig | None = None) -> RWConfig:
    """The paper's config (or `base`) with one departure switched to the tuned value."""
    base = base or RWConfig.paper()
    return replace(base, **{field_name: getattr(RWConfig.tuned(), field_name)})


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
    unit = float(np.std(values[mask])) if mask.sum() > 1 else 1.0
    sigma = 1.0 if cfg.sigma_scale is None else cfg.sigma_scale * unit
    t0 = time.perf_counter()
    trust = cfg.final_form == "trust"
    if cfg.final_form not in ("paper", "trust", "direct"):
        raise ValueError(f"final_form {cfg.final_form!r}: use paper, trust or direct")
    out = similarity.penalized_euclidean(values, mask, gamma=cfg.gamma, sigma=sigma, min_common=cfg.min_common,
                                         dtype=dt, return_common=trust, centring=cfg.centring, root=cfg.root)
    s, common = out if trust else (out, None)
    same = location.same_as(loc, n) if (cfg.location and cfg.as_first) else None
    info["as_first"] = same is not None
    if cfg.final_form == "direct":  # ablation: no walk (and so no omega)
        info["omega"] = False
        info["seconds_similarity"] = round(time.perf_counter() - t0, 3)
        return s, same
    om = location.omega(values, mask, loc, gamma=cfg.gamma, sigma=sigma, mode=cfg.omega_mode,
                        enabled=cfg.location and cfg.omega, dtype=dt, centring=cfg.centring, root=cfg.root)
    info["omega"] = om is not None
    if om is not None:
        om *= s  # edge weights a = s * omega (Eq. 8's numerator), in omega's buffer
        a = randomwalk.edge_weights(om, None, cfg.graph_top_n) if cfg.graph_top_n else om
    else:
        a = randomwalk.edge_weights(s, None, cfg.graph_top_n)
    t1 = time.perf_counter()
    symmetric = cfg.omega_mode != "neighbour" or not info["omega"]
    gd = None
    if cfg.final_form == "paper" and symmetric and not cfg.graph_top_n:
        gd = randomwalk.green(a, cfg.alpha, dtype=dt, overwrite=True)  # None when a node has no edge
    if gd is not None:
        del a, om
        t2 = time.perf_counter()
        s_star = randomwalk.paper_similarity_green(gd[0], gd[1], s, cfg.alpha, cfg.phi_form)
        del gd, s
        info["seconds_similarity"] = round(t1 - t0, 3)
        info["seconds_walk"] = round(t2 - t1, 3)
        info["seconds_final"] = round(time.perf_counter() - t2, 3)
        return s_star, same
    p = randomwalk.visiting_probabilities(a, cfg.alpha, symmetric=symmetric, dtype=dt, overwrite=True)
    del a, om
    t2 = time.perf_counter()
    if trust:
        r = randomwalk.walk_similarity(p, s, inplace=True)
        del p
        phi = randomwalk.trust(common, cfg.theta, inplace=True)
        s_star = randomwalk.final_similarity(s, r, phi, inplace=True)
        del r, phi, common
    else:
        s_star = randomwalk.paper_similarity(p, s, cfg.phi_form, inplace=True)
        del p, s
    info["seconds_similarity"] = round(t1 - t0, 3)
    info["seconds_walk"] = round(t2 - t1, 3)
    info["seconds_final"] = round(time.perf_counter() - t2, 3)
    return s_star, same


def rw_side(values: np.ndarray, mask: np.ndarray, loc: Locations | None, cfg: RWConfig) -> SideResult:
    """One side of the RW models: Eq. 18 on the rows of `values` (pass the transpose for Eq. 19)."""
    info: dict = {}
    s_star, same = rw_final_similarity(values, mask, loc, cfg, info)
    prio = neighbours.priorities(s_star, same)
    base = similarity.row_means(values, mask)
    t0 = time.perf_counter()
    pred, has = neighbours.predict(s_star, prio, values, mask, base, cfg.k, cfg.pool, form=cfg.predict_form,
                                   scope=cfg.scope)
    info["seconds_neighbours"] = round(time.perf_counter() - t0, 3)
    return SideResult(pred, has, info)


def pcc_side(values: np.ndarray, mask: np.ndarray, k: int = 10, pool: int | None = None,
             levels: np.ndarray | None = None) -> SideResult:
    """UPCC on the rows of `values` (IPCC: pass the transpose); levels: LACF's location tiers."""
    base = similarity.row_means(values, mask)
    w = similarity.pcc(values, mask, dtype=_dtype(values.shape[0]), centre=base)
    prio = neighbours.priorities(w, levels=levels)
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


def _levels(loc: Locations | None) -> np.ndarray | None:
    if loc is None or not ((loc.asn >= 0) | (loc.country >= 0)).any():
        return None
    return location.shared_level(loc)


class LACF(Model):
    """Location-aware CF (Tang et al., ICWS 2012), the paper's location-aware baseline, as we read it.

    Tang et al. search a target's similar users among those *near* it rather than among all users,
    and likewise for services. Here: PCC similarity (as UPCC / IPCC), neighbours ranked by location
    tier first -- same AS, then same country, then everyone -- and by PCC within a tier, top-K (10)
    per predicted cell, mean-centred prediction; user and service sides combined as UIPCC
    (lambda = 0.1), a side without neighbours ceding its weight. Their paper was not at hand: the
    tiers and the combination are our reading of its published summary. A side without locations
    is plain UPCC / IPCC.
    """

    name = "LACF"
    lam = 0.1

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        u = pcc_side(data.values, mask, self.cfg.k, self.cfg.pool, levels=_levels(data.users))
        s = pcc_side(data.values.T, mask.T, self.cfg.k, self.cfg.pool, levels=_levels(data.services))
        return hybrid(u, s, self.lam)


class MF(Model):
    name = "MF"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        return BiasedMF().fit_predict(data.values, mask)


class ULRW(Model):
    name = "UL-RW-paper"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        side = rw_side(data.values, mask, data.users, self.cfg)
        self.info = {"users": side.info}
        return side.pred


class SLRW(Model):
    name = "SL-RW-paper"

    def fit_predict(self, data):
        mask = ~np.isnan(data.values)
        side = rw_side(data.values.T, mask.T, data.services, self.cfg)
        self.info = {"services": side.info}
        return side.pred.T


class HLRW(Model):
    name = "HL-RW-paper"

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
        self.info = {"users": u.info, "services": s.info, "lambda": self.cfg.lam_for(data.metric)}
        return u, s

    def fit_predict(self, data):
        u, s = self.sides(data)
        return hybrid(u, s, self.cfg.lam_for(data.metric))


class HLRWMF(HLRW):
    """Beyond the paper: HL-RW-tuned and the MF baseline err differently (local neighbours vs global factors).

    qhat = beta HL-RW + (1 - beta) MF. With beta=None, beta is chosen (grid 0, 0.1, ..., 1) by
    fitting both on 90 % of the training cells and scoring the other 10 %; then both are refitted
    on all of them. That validation fit roughly doubles the time.
    """

    name = "HL-RW+MF"
    holdout = 0.1

    def _blend_parts(self, data) -> tuple[np.ndarray, np.ndarray]:
        hl = hybrid(*self.sides(data), self.cfg.lam_for(data.metric))
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


BASELINES: dict[str, type[Model]] = {m.name: m for m in (UMean, IMean, UPCC, IPCC, UIPCC, LACF, MF)}
RW_CLASSES: dict[str, type[Model]] = {"UL-RW": ULRW, "SL-RW": SLRW, "HL-RW": HLRW}
#: Every name make() accepts (besides the -noloc forms).
MODELS: dict[str, type[Model]] = {
    **BASELINES,
    **{f"{b}{v}": c for b, c in RW_CLASSES.items() for v in ("", "-paper", "-tuned")},
    "HL-RW+MF": HLRWMF,
}
RW_MODELS = tuple(n for n in MODELS if n not in BASELINES)


def preset(name: str) -> RWConfig:
    """The config a model name stands for: the tuned one for '-tuned' and HL-RW+MF, else the paper's."""
    return RWConfig.tuned() if (name.endswith("-tuned") or name == "HL-RW+MF") else RWConfig.paper()


def with_overrides(base: RWConfig, cfg: RWConfig | None) -> RWConfig:
    """`base` with the fields in which `cfg` differs from the RWConfig() defaults (what a caller set on purpose)."""
    if cfg is None:
        return base
    default = RWConfig()
    changed = {f.name: getattr(cfg, f.name) for f in fields(RWConfig) if getattr(cfg, f.name) != getattr(default, f.name)}
    return replace(base, **changed)


def make(name: str, cfg: RWConfig | None = None, exact: bool = False) -> Model:
    """A model by name. RW models start from their preset (paper or tuned) and take from `cfg` only the
    fields a caller changed from the RWConfig() defaults; exact=True uses `cfg` as it is (the ablation).
    '<RW model>-noloc' switches the location weight and AS-first selection off."""
    base = name
    noloc = name.endswith("-noloc")
    if noloc:
        base = name[: -len("-noloc")]
        if base not in RW_MODELS:
            raise ValueError(f"{name}: -noloc applies to {', '.join(RW_MODELS)}")
    if base not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)} (RW models also as <name>-noloc)")
    if base in BASELINES:
        model = MODELS[base](cfg or RWConfig())
    else:
        c = (cfg or RWConfig()) if exact else with_overrides(preset(base), cfg)
        model = MODELS[base](replace(c, location=False) if noloc else c)
    model.name = name
    return model
