"""Published model snapshots: what the stream loads, without ever opening DuckDB.

A snapshot is a folder OSR_SNAPSHOT_DIR/<model_id>/ of Parquet files, a LightGBM
model and meta.json; the file OSR_SNAPSHOT_DIR/LIVE names the live one and is
replaced atomically, so a reader sees the old snapshot or the new, never half.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import config

TABLES = ("topn", "items", "users", "stores", "rules", "preferences")
#: Written when given; a snapshot without it has no device registry (only known people are checked).
OPTIONAL_TABLES = ("devices",)


def snapshot_root() -> Path:
    return config.path("OSR_SNAPSHOT_DIR", create=True)


def write_snapshot(model_id: str, tables: dict[str, pd.DataFrame], propensity_model: str, meta: dict,
                   root: Path | None = None) -> Path:
    """Write a complete snapshot folder (not yet live)."""
    missing = set(TABLES) - set(tables)
    if missing:
        raise ValueError(f"snapshot {model_id} lacks tables {sorted(missing)}")
    folder = (root or snapshot_root()) / model_id
    if folder.exists():
        raise FileExistsError(f"snapshot {folder} already exists; model ids are never reused")
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in (*TABLES, *(t for t in OPTIONAL_TABLES if t in tables)):
        tables[name].to_parquet(tmp / f"{name}.parquet", index=False)
    (tmp / "propensity.txt").write_text(propensity_model)
    (tmp / "meta.json").write_text(json.dumps({**meta, "model_id": model_id}, indent=2, default=str))
    tmp.rename(folder)
    return folder


def set_live(model_id: str, root: Path | None = None) -> None:
    """Make `model_id` the snapshot the stream serves (atomic rename of the LIVE pointer)."""
    root = root or snapshot_root()
    if not (root / model_id / "meta.json").exists():
        raise FileNotFoundError(f"no complete snapshot {model_id} under {root}")
    tmp = root / "LIVE.tmp"
    tmp.write_text(model_id)
    os.replace(tmp, root / "LIVE")


def live_model_id(root: Path | None = None) -> str | None:
    f = (root or snapshot_root()) / "LIVE"
    return f.read_text().strip() if f.exists() else None


@dataclass
class Snapshot:
    """A loaded snapshot, indexed for per-event lookups."""

    model_id: str
    meta: dict
    items: pd.DataFrame
    users: dict[str, dict]
    stores_xy: np.ndarray
    topn: dict[str, tuple[np.ndarray, np.ndarray]]  # user_id -> (item_ids, preference in [0, 1])
    popular: tuple[np.ndarray, np.ndarray]  # fallback candidates for people without a top-N
    booster: object
    rules: pd.DataFrame
    preferences: dict[str, dict]
    folder: Path = field(default=None)
    devices: dict[str, str] | None = None  # device_id -> user_id; None = no registry in this snapshot
    _devices_by_user: dict[str, list[str]] | None = field(default=None, repr=False)

    def registered(self, user_id: str, device_id: str) -> str | None:
        """Why an upload from this person / device must not be served (quarantine), or None."""
        if user_id not in self.users:
            return f"unknown person {user_id[:80]!r} (not in the live snapshot): quarantined, never pushed to"
        if self.devices is not None and self.devices.get(device_id) != user_id:
            return f"device {device_id[:80]!r} is not registered to {user_id[:80]!r}: quarantined"
        return None

    def person_tz(self, user_id: str) -> str | None:
        """The person's IANA time zone (ref.users.tz; None = UTC, also for snapshots from before it)."""
        return _text((self.users.get(user_id) or {}).get("tz"))

    def person_class(self, user_id: str) -> str | None:
        """The person's class (segment, ref.users.person_class) for person-class tuner rules, or None."""
        return _text((self.users.get(user_id) or {}).get("person_class"))

    def devices_of(self, user_id: str) -> list[str] | None:
        """The devices registered to a person (sorted), or None without a registry: the stream
        fuses a moment as soon as all of them have reported it."""
        if self.devices is None:
            return None
        if self._devices_by_user is None:
            by: dict[str, list[str]] = {}
            for device, user in self.devices.items():
                by.setdefault(user, []).append(device)
            self._devices_by_user = {u: sorted(d) for u, d in by.items()}
        return self._devices_by_user.get(user_id)

    @property
    def raw_range(self) -> tuple[float, float]:
        return float(self.meta["raw_min"]), float(self.meta["raw_max"])


def _text(v) -> str | None:
    """A text cell of a snapshot table, None when empty (Parquet gives None or NaN for a null)."""
    return None if v is None or (isinstance(v, float) and v != v) or v == "" else str(v)


def load_snapshot(model_id: str | None = None, root: Path | None = None) -> Snapshot:
    """Load `model_id` (default: the live one)."""
    import lightgbm as lgb

    root = root or snapshot_root()
    model_id = model_id or live_model_id(root)
    if not model_id:
        raise FileNotFoundError(f"no live snapshot under {root}: run the nightly batch (`osr nightly`) first")
    folder = root / model_id
    meta = json.loads((folder / "meta.json").read_text())
    t = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    topn = {}
    for uid, g in t["topn"].sort_values(["user_id", "rank"]).groupby("user_id", sort=False):
        topn[uid] = (g.item_id.to_numpy(), g.preference.to_numpy(dtype=float))
    pop = t["items"].sort_values("popularity", ascending=False).head(int(meta.get("top_n", 10)))
    pmax = max(float(pop.popularity.max()), 1e-9) if len(pop) else 1.0
    popular = (pop.item_id.to_numpy(), pop.popularity.to_numpy(dtype=float) / pmax)
    booster = lgb.Booster(model_str=(folder / "propensity.txt").read_text())
    return Snapshot(
        model_id=model_id,
        meta=meta,
        items=t["items"].set_index("item_id"),
        users=t["users"].set_index("user_id").to_dict("index"),
        stores_xy=t["stores"][["x", "y"]].to_numpy(dtype=float),
        topn=topn,
        popular=popular,
        booster=booster,
        rules=t["rules"],
        preferences=t["preferences"].set_index("user_id").to_dict("index"),
        folder=folder,
        devices=(pd.read_parquet(folder / "devices.parquet").set_index("device_id").user_id.to_dict()
                 if (folder / "devices.parquet").exists() else None),
    )


class LiveSnapshot:
    """The live snapshot for a long-running reader: re-reads LIVE at most every `check_every_s`
    seconds (or when told to by `refresh(force=True)`, e.g. on a control-topic message)."""

    def __init__(self, root: Path | None = None, check_every_s: float | None = None):
        import time

        self._time = time.monotonic
        self.root = root
        self.check_every_s = float(config.get("OSR_SNAPSHOT_POLL_S")) if check_every_s is None else check_every_s
        self._snap: Snapshot | None = None
        self._checked = -1e9

    def refresh(self, force: bool = False) -> Snapshot:
        now = self._time()
        if force or self._snap is None or now - self._checked >= self.check_every_s:
            self._checked = now
            live = live_model_id(self.root)
            if live and (self._snap is None or live != self._snap.model_id):
                self._snap = load_snapshot(live, self.root)
        if self._snap is None:
            raise FileNotFoundError("no live snapshot yet: run the nightly batch (`osr nightly`) first")
        return self._snap
