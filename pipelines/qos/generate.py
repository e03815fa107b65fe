"""Seeded, realistic QoS matrices on the real locations of WS-DREAM's 339 users and 5,825 services.

Why: the real full matrices are not available here, and the location-aware models need
full-size data with real AS / country structure to be evaluated. The generator is a
small network model, every term of which is a known effect in wide-area service QoS:

response time (seconds), per user u and service s:

    rt = scale * (net(u,s) + proc(s)) * user(u) * as_pair(AS_u, AS_s) * noise(u,s),  capped at 20 s

    net(u,s)  = n_rtt * rtt(u,s) * locality;   rtt = 20 ms + great-circle km / 60 ms (fibre at
                ~2/3 c on indirect routes), n_rtt = 3 (TCP handshake, request, response);
                locality = 0.4 inside one AS, 0.7 inside one country, else 1
    proc(s)   = per-service processing time, lognormal (median 80 ms, sigma 1.2) times a load
                factor (lognormal, sigma 0.5; 5 % of services overloaded, x5..x20)
    user(u)   = access-network quality of u, and of u's AS and country (lognormals)
    as_pair   = route quality between the two ASes (lognormal, sigma 0.3) -- the effect the
                location-aware models can exploit: users of one AS see correlated times
    noise     = lognormal (sigma 0.35); 4 % of invocations hit a heavy tail (x 1 + 3 Pareto(1.2))

throughput (kbps):

    tp = scale * bw(u) * bw(s) * as_pair'(AS_u, AS_s) * noise' / (rtt(u,s) * locality)^0.6,  capped at 1,000

``scale`` is set by bisection so the mean matches the published WS-DREAM means
(response time 0.81 s, throughput 44.03 kbps) after the cap. Missing coordinates are
imputed from the node's country (mean of known nodes there), else drawn at random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import config
from pipelines.qos.data import Locations, QoSData, read_locations

PUBLISHED_MEAN = {"rt": 0.81, "tp": 44.03}
CAP = {"rt": 20.0, "tp": 1000.0}
TAIL_P, TAIL_SHAPE, TAIL_SCALE = 0.04, 1.2, 3.0  # share of invocations in the heavy tail, its Pareto shape, scale
PROC_SIGMA = 1.2  # spread of per-service processing times (log scale)


def wsdream_dir() -> Path:
    """Folder of the WS-DREAM files: OSR_DATA_DIR/wsdream."""
    return config.path("OSR_DATA_DIR") / "wsdream"


def real_locations(folder: str | Path | None = None) -> tuple[Locations, Locations]:
    """The 339 users' and 5,825 services' locations from userlist / wslist (gzip or not)."""
    folder = Path(folder) if folder else wsdream_dir()

    def pick(stem):
        for name in (f"{stem}.txt.gz", f"{stem}.txt"):
            if (folder / name).exists():
                return folder / name
        raise FileNotFoundError(f"{stem}.txt(.gz) not in {folder} (set OSR_DATA_DIR)")

    return read_locations(pick("userlist")), read_locations(pick("wslist"))


def _impute_coordinates(loc: Locations, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = loc.lat.copy(), loc.lon.copy()
    missing = np.isnan(lat) | np.isnan(lon)
    for i in np.flatnonzero(missing):
        same = (loc.country == loc.country[i]) & ~missing & (loc.country[i] >= 0)
        if same.any():
            lat[i], lon[i] = lat[same].mean(), lon[same].mean()
        else:
            lat[i], lon[i] = rng.uniform(-50, 60), rng.uniform(-180, 180)
    return lat, lon


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Pairwise haversine distances (km) between two sets of points, as a len1 x len2 matrix."""
    p1, p2 = np.radians(lat1)[:, None], np.radians(lat2)[None, :]
    dl = np.radians(lon2)[None, :] - np.radians(lon1)[:, None]
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _codes_or_self(codes: np.ndarray) -> np.ndarray:
    """Unknown AS: each such node is its own one-member system (no shared-AS effect)."""
    out = codes.copy()
    unknown = np.flatnonzero(out < 0)
    out[unknown] = out.max(initial=-1) + 1 + np.arange(len(unknown))
    return out


def _calibrate(raw: np.ndarray, target: float, cap: float) -> float:
    lo, hi = 1e-6, 1e6
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        if np.minimum(raw * mid, cap).mean() < target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def generate(metric: str = "rt", seed: int = 0, users: Locations | None = None, services: Locations | None = None,
             missing: float = 0.0) -> QoSData:
    """A full users x services matrix of `metric` ('rt' or 'tp'); `missing` = fraction left unobserved."""
    if metric not in PUBLISHED_MEAN:
        raise ValueError("metric must be 'rt' or 'tp'")
    if users is None or services is None:
        ru, rs = real_locations()
        users, services = users or ru, services or rs
    rng = np.random.default_rng([seed, 2017])
    m, n = len(users), len(services)
    ulat, ulon = _impute_coordinates(users, rng)
    slat, slon = _impute_coordinates(services, rng)
    km = great_circle_km(ulat, ulon, slat, slon)
    rtt = 0.020 + km / 60.0 / 1000.0  # seconds
    same_as = (users.asn[:, None] == services.asn[None, :]) & (users.asn[:, None] >= 0)
    same_c = (users.country[:, None] == services.country[None, :]) & (users.country[:, None] >= 0)
    locality = np.where(same_as, 0.4, np.where(same_c, 0.7, 1.0))
    ua, sa = _codes_or_self(users.asn), _codes_or_self(services.asn)
    uc = _codes_or_self(users.country)
    # draws happen in a fixed order so every seed gives the same matrix for both metrics' shared parts
    as_pair = rng.normal(0, 0.3, (ua.max() + 1, sa.max() + 1))
    as_pair_tp = rng.normal(0, 0.3, (ua.max() + 1, sa.max() + 1))
    user_q = rng.normal(0, 0.3, m) + rng.normal(0, 0.25, ua.max() + 1)[ua] + rng.normal(0, 0.2, uc.max() + 1)[uc]
    proc = np.exp(np.log(0.08) + rng.normal(0, PROC_SIGMA, n))
    load = np.exp(rng.normal(0, 0.5, n))
    overloaded = rng.random(n) < 0.05
    load[overloaded] *= rng.uniform(5, 20, int(overloaded.sum()))
    bw_u = rng.normal(0, 0.5, m)
    bw_s = rng.normal(0, 0.7, n)
    noise = rng.normal(0, 0.35, (m, n))
    tail = np.where(rng.random((m, n)) < TAIL_P, 1.0 + TAIL_SCALE * rng.pareto(TAIL_SHAPE, (m, n)), 1.0)
    noise_tp = rng.normal(0, 0.35, (m, n))
    if metric == "rt":
        net = 3 * rtt * locality
        raw = (net + (proc * load)[None, :]) * np.exp(user_q[:, None] + as_pair[ua][:, sa] + noise) * tail
    else:
        raw = np.exp(bw_u[:, None] + bw_s[None, :] + as_pair_tp[ua][:, sa] + noise_tp - 0.5 * user_q[:, None])
        raw /= (rtt * locality) ** 0.6 * np.sqrt(tail)
    scale = _calibrate(raw, PUBLISHED_MEAN[metric], CAP[metric])
    values = np.minimum(raw * scale, CAP[metric])
    values = np.round(values, 3)
    values[values <= 0] = 0.001
    if missing > 0:
        values[rng.random((m, n)) < missing] = np.nan
    return QoSData(values=values, users=users, services=services, metric=metric)
