"""Seeded synthetic population: people, devices, items, stores, purchase history,
sensor traces with ground-truth states, and purchase outcomes that depend on state.

Why synthetic: real wearable traces with ground-truth states and purchase outcomes
are not available, and the platform's claims (filtering removes noise, ALS learns
preferences, pushing in the right state sells more) can only be scored against a
known truth. Every random draw comes from one seeded generator, so a size and a
seed always give the same population.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from pipelines.contracts import event_id_for

#: Item categories. Each is tied to the states in which people buy it.
CATEGORIES = ["sports_drink", "protein_bar", "coffee", "lunch", "grocery", "apparel", "electronics", "streaming"]
STATES = ["workout", "commute", "idle", "near_store"]
OFFER_TYPES = ["discount", "bogo", "free_gift"]
HANDSETS = ["ios", "android"]

#: Log-odds lift of buying a category in a state: the premise of the OSR paper
#: (a person is receptive to some items only in some states).
STATE_AFFINITY: dict[str, dict[str, float]] = {
    "workout": {"sports_drink": 3.0, "protein_bar": 2.6},
    "commute": {"coffee": 2.8, "streaming": 1.6},
    "idle": {"streaming": 2.2, "electronics": 1.4, "lunch": 0.8},
    "near_store": {"grocery": 2.8, "apparel": 2.4, "electronics": 1.8, "lunch": 1.4},
}
#: Hours of the day at which each state usually happens (sampled uniformly).
STATE_HOURS: dict[str, list[int]] = {
    "workout": [6, 7, 18, 19, 20],
    "commute": [7, 8, 17, 18],
    "idle": [10, 13, 15, 21, 22],
    "near_store": [11, 12, 13, 17, 19],
}
#: People's IANA time zones (their quiet hours and daily cap are local) and how common each is: most
#: live where the city frame is (London: UTC in November, when the streamed day is), some abroad.
TIME_ZONES = {"Europe/London": 0.4, "Europe/Berlin": 0.2, "America/New_York": 0.2, "Asia/Tokyo": 0.2}
#: Person classes (segments) tuner rules can target (scope person_class), and their shares.
PERSON_CLASSES = {"new": 0.2, "regular": 0.6, "loyal": 0.2}
BASE_LOG_ODDS = -5.0  # a random push to a random person converts well under 1 %
PREFERENCE_WEIGHT = 1.2  # log-odds per standard deviation of latent preference


@dataclass(frozen=True)
class PopulationParams:
    """Sizes and noise levels. Defaults make the embedded demo run in a few minutes on 2 cores."""

    n_users: int = 200
    n_items: int = 240
    n_stores: int = 24
    rank: int = 6  # latent dimension of true preferences
    interactions_per_user: int = 30
    history_contexts_per_user: int = 24  # contexts (sensor windows + exposures) for training
    stream_contexts_per_user: int = 8  # contexts streamed through Kafka by the main job
    exposures_per_context: int = 3
    readings_per_event: int = 60  # 1 Hz readings per device upload
    watch_share: float = 0.6  # share of people who also wear a watch
    gps_noise_m: float = 8.0
    watch_gps_noise_m: float = 12.0
    spike_prob: float = 0.02  # GPS readings replaced by an outlier 100-500 m away
    hr_noise_bpm: float = 4.0
    hr_dropout: float = 0.05
    acc_noise: float = 0.4
    city_m: float = 10_000.0
    history_start: str = "2026-11-02"
    history_days: int = 14
    stream_day: str = "2026-11-16"
    seed: int = 7


@dataclass
class Population:
    params: PopulationParams
    users: pd.DataFrame
    devices: pd.DataFrame
    items: pd.DataFrame
    stores: pd.DataFrame
    interactions: pd.DataFrame
    user_factors: np.ndarray
    item_factors: np.ndarray
    contexts: pd.DataFrame  # context_id, user_id, split (history/stream), state, start_ts, hour
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._user_index = {u: i for i, u in enumerate(self.users.user_id)}
        self._item_index = {it: i for i, it in enumerate(self.items.item_id)}

    def preference_z(self, user_id: str, item_ids) -> np.ndarray:
        """True latent preference of a person for items, in standard deviations."""
        u = self.user_factors[self._user_index[user_id]]
        idx = [self._item_index[i] for i in item_ids]
        return (self.item_factors[idx] @ u) / math.sqrt(self.params.rank)

    def purchase_probability(self, user_id: str, item_ids, state: str) -> np.ndarray:
        """Ground truth P(purchase | person, item, state): preference plus the state's lift for the category."""
        item_ids = list(item_ids)
        cats = self.items.category.to_numpy()[[self._item_index[i] for i in item_ids]]
        lift = np.array([STATE_AFFINITY[state].get(c, 0.0) for c in cats])
        logit = BASE_LOG_ODDS + PREFERENCE_WEIGHT * self.preference_z(user_id, item_ids) + lift
        return 1.0 / (1.0 + np.exp(-logit))


def _epoch(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()


def generate(params: PopulationParams | None = None) -> Population:
    """Build the whole population (everything but the sensor readings, which `sensor_events` makes lazily)."""
    p = params or PopulationParams()
    rng = np.random.default_rng(p.seed)

    ages = rng.integers(18, 66, p.n_users)
    home = rng.uniform(0.1 * p.city_m, 0.9 * p.city_m, (p.n_users, 2))
    work = rng.uniform(0.3 * p.city_m, 0.7 * p.city_m, (p.n_users, 2))
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:05d}" for i in range(p.n_users)],
            "age": ages.astype(int),
            "peak_hr": (220.0 - ages).astype(float),
            "handset": rng.choice(HANDSETS, p.n_users),
            "home_x": home[:, 0], "home_y": home[:, 1],
            "work_x": work[:, 0], "work_y": work[:, 1],
        }
    )
    # time zone and class from a generator of their own, so every other draw stays what it was
    side = np.random.default_rng([p.seed, 61])
    users["tz"] = side.choice(list(TIME_ZONES), p.n_users, p=list(TIME_ZONES.values()))
    users["person_class"] = side.choice(list(PERSON_CLASSES), p.n_users, p=list(PERSON_CLASSES.values()))
    has_watch = rng.random(p.n_users) < p.watch_share
    dev_rows = []
    for uid, w in zip(users.user_id, has_watch):
        dev_rows.append((f"{uid}-phone", uid, "phone"))
        if w:
            dev_rows.append((f"{uid}-watch", uid, "watch"))
    devices = pd.DataFrame(dev_rows, columns=["device_id", "user_id", "device_type"])

    # Items: latent factors clustered by category so "similar items" share taste.
    cat_idx = np.arange(p.n_items) % len(CATEGORIES)
    rng.shuffle(cat_idx)
    cat_centres = rng.normal(0, 1.0, (len(CATEGORIES), p.rank))
    item_factors = cat_centres[cat_idx] + rng.normal(0, 0.6, (p.n_items, p.rank))
    user_factors = rng.normal(0, 1.0, (p.n_users, p.rank))
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:05d}" for i in range(p.n_items)],
            "category": np.array(CATEGORIES)[cat_idx],
            "price": np.round(rng.lognormal(2.5, 0.6, p.n_items), 2),
            "offer_type": rng.choice(OFFER_TYPES, p.n_items),
        }
    )
    store_cats = ["grocery", "apparel", "electronics", "lunch"]
    stores = pd.DataFrame(
        {
            "store_id": [f"s{i:04d}" for i in range(p.n_stores)],
            "category": [store_cats[i % len(store_cats)] for i in range(p.n_stores)],
            "x": rng.uniform(0.1 * p.city_m, 0.9 * p.city_m, p.n_stores),
            "y": rng.uniform(0.1 * p.city_m, 0.9 * p.city_m, p.n_stores),
        }
    )

    # Purchase history: items drawn by softmax of true preference times popularity.
    popularity = rng.pareto(2.0, p.n_items) + 1.0
    start = _epoch(p.history_start)
    span = p.history_days * 86400.0
    rows = []
    pref = user_factors @ item_factors.T / math.sqrt(p.rank)
    n_take = min(p.interactions_per_user, p.n_items)
    for u in range(p.n_users):
        w = np.exp(1.5 * pref[u]) * np.sqrt(popularity)
        chosen = rng.choice(p.n_items, n_take, replace=False, p=w / w.sum())
        counts = 1 + rng.poisson(0.7, n_take)
        ts = start + rng.uniform(0, span, n_take)
        for k, (i, c, t) in enumerate(zip(chosen, counts, ts)):
            rows.append((f"ix-{u:05d}-{k:04d}", users.user_id[u], items.item_id[i], float(c), t))
    interactions = pd.DataFrame(rows, columns=["interaction_id", "user_id", "item_id", "weight", "ts"])
    interactions["ts"] = pd.to_datetime(interactions.ts, unit="s")

    # Contexts: a state at an hour on a day, for history (training) and for the streamed day.
    ctx = []
    for split, per_user, day0, days in (
        ("history", p.history_contexts_per_user, start, p.history_days),
        ("stream", p.stream_contexts_per_user, _epoch(p.stream_day), 1),
    ):
        for u, uid in enumerate(users.user_id):
            states = rng.choice(STATES, per_user)
            for k, s in enumerate(states):
                hour = int(rng.choice(STATE_HOURS[s]))
                t0 = day0 + 86400.0 * int(rng.integers(0, days)) + 3600.0 * hour + rng.uniform(0, 3000)
                ctx.append((f"{split[0]}{u:05d}-{k:03d}", uid, split, s, t0, hour))
    contexts = pd.DataFrame(ctx, columns=["context_id", "user_id", "split", "state", "start_ts", "hour"])
    # a person's windows must not overlap in time: space them at least 10 minutes apart
    contexts = contexts.sort_values(["user_id", "start_ts"]).reset_index(drop=True)
    gap = p.readings_per_event + 600.0
    prev_uid, prev_t = None, -1e18
    adj = contexts.start_ts.to_numpy().copy()
    for j, uid in enumerate(contexts.user_id):
        if uid == prev_uid and adj[j] < prev_t + gap:
            adj[j] = prev_t + gap
        prev_uid, prev_t = uid, adj[j]
    contexts["start_ts"] = adj
    contexts["hour"] = ((adj % 86400) // 3600).astype(int)

    return Population(p, users, devices, items, stores, interactions, user_factors, item_factors, contexts)


def _true_trace(rng, p: PopulationParams, state: str, user: pd.Series, stores: pd.DataFrame, n: int):
    """True positions (m), heart rate (bpm) and acceleration magnitude for one context."""
    home = np.array([user.home_x, user.home_y])
    work = np.array([user.work_x, user.work_y])
    peak = float(user.peak_hr)
    if state == "workout":
        speed, hr_share, acc_sd, origin = rng.normal(2.9, 0.3), rng.uniform(0.75, 0.9), 3.0, home + rng.normal(0, 300, 2)
    elif state == "commute":
        speed, hr_share, acc_sd = rng.normal(11.0, 2.0), rng.uniform(0.5, 0.6), 1.2
        origin = home + rng.uniform(0.1, 0.6) * (work - home)
    elif state == "idle":
        speed, hr_share, acc_sd = 0.0, rng.uniform(0.42, 0.5), 0.15
        origin = (home if rng.random() < 0.5 else work) + rng.normal(0, 15, 2)
    else:  # near_store
        s = stores.iloc[int(rng.integers(len(stores)))]
        speed, hr_share, acc_sd = rng.normal(1.2, 0.15), rng.uniform(0.55, 0.65), 0.8
        origin = np.array([s.x, s.y]) + rng.normal(0, 60, 2)
    if state == "commute":
        d = work - home
        heading = math.atan2(d[1], d[0]) + rng.normal(0, 0.05)
        turn = np.zeros(n)
    else:
        heading = rng.uniform(-math.pi, math.pi)
        turn = np.cumsum(rng.normal(0, 0.05, n))
    ang = heading + turn
    step = np.maximum(speed, 0.0) + rng.normal(0, 0.05 * max(speed, 0.1), n) * (speed > 0)
    xy = origin + np.cumsum(np.c_[np.cos(ang) * step, np.sin(ang) * step], axis=0)
    hr = peak * hr_share + np.cumsum(rng.normal(0, 0.3, n))
    acc = np.abs(9.81 + rng.normal(0, acc_sd, n)) if state != "idle" else 9.81 + rng.normal(0, acc_sd, n)
    return xy, hr, acc


def sensor_events(pop: Population, split: str = "stream"):
    """Yield (event, truth) per context and device: the JSON-ready upload a device sends, and its ground truth.

    event: {event_id, user_id, device_id, device_type, ts[], x[], y[], hr[] (None on phones / dropouts), acc[]}
    truth: {event_id, user_id, context_id, state, ts_end, x[], y[], hr[]}
    """
    p = pop.params
    rng = np.random.default_rng(p.seed + (1 if split == "stream" else 2))
    users = pop.users.set_index("user_id")
    devs = pop.devices.groupby("user_id").device_type.apply(list).to_dict()
    n = p.readings_per_event
    for c in pop.contexts[pop.contexts.split == split].itertuples(index=False):
        user = users.loc[c.user_id]
        xy, hr, acc = _true_trace(rng, p, c.state, user, pop.stores, n)
        ts = c.start_ts + np.arange(n, dtype=float) + rng.uniform(-0.05, 0.05, n)
        for dtype in devs[c.user_id]:
            sd = p.gps_noise_m if dtype == "phone" else p.watch_gps_noise_m
            noisy = xy + rng.normal(0, sd, (n, 2))
            spikes = rng.random(n) < p.spike_prob
            if spikes.any():
                ang = rng.uniform(-math.pi, math.pi, spikes.sum())
                dist = rng.uniform(100, 500, spikes.sum())
                noisy[spikes] += np.c_[np.cos(ang) * dist, np.sin(ang) * dist]
            if dtype == "watch":
                hr_obs = hr + rng.normal(0, p.hr_noise_bpm, n)
                hr_list = [None if d else round(float(v), 1) for v, d in zip(hr_obs, rng.random(n) < p.hr_dropout)]
            else:
                hr_list = [None] * n
            acc_obs = acc + rng.normal(0, p.acc_noise, n)
            device_id = f"{c.user_id}-{dtype}"
            event_id = event_id_for(device_id, c.context_id)
            event = {
                "event_id": event_id,
                "user_id": c.user_id,
                "device_id": device_id,
                "device_type": dtype,
                "ts": [round(float(t), 3) for t in ts],
                "x": [round(float(v), 2) for v in noisy[:, 0]],
                "y": [round(float(v), 2) for v in noisy[:, 1]],
                "hr": hr_list,
                "acc": [round(float(v), 3) for v in acc_obs],
            }
            truth = {
                "event_id": event_id, "user_id": c.user_id, "context_id": c.context_id, "state": c.state,
                "ts_end": float(ts[-1]), "x": xy[:, 0], "y": xy[:, 1], "hr": hr, "spikes": spikes,
            }
            yield event, truth


def outcomes(pop: Population, split: str = "history") -> pd.DataFrame:
    """Exposures of random items one minute after each context ends, with purchases drawn from the truth."""
    p = pop.params
    rng = np.random.default_rng(p.seed + 3)
    rows = []
    item_ids = pop.items.item_id.to_numpy()
    for c in pop.contexts[pop.contexts.split == split].itertuples(index=False):
        shown = rng.choice(item_ids, p.exposures_per_context, replace=False)
        prob = pop.purchase_probability(c.user_id, shown, c.state)
        bought = rng.random(len(shown)) < prob
        t = c.start_ts + p.readings_per_event + 60.0
        for k, (it, b) in enumerate(zip(shown, bought)):
            rows.append((f"o-{c.context_id}-{k}", c.user_id, it, t, bool(b)))
    df = pd.DataFrame(rows, columns=["outcome_id", "user_id", "item_id", "ts", "purchased"])
    df["ts"] = pd.to_datetime(df.ts, unit="s")
    return df
