"""MovieLens 100K: the real ratings the recommenders are measured on, checked against their sha256.

The file is read in place from `$OSR_DATA_DIR/movielens/ml-100k/u.data` (never copied into the
project). The benchmark split is `ml100k_split()`: numpy default_rng(seed=0) permutation of the
100,000 rating rows, the first 20,000 are the test set (see ratings.random_split).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import config
from pipelines.recsys.ratings import RatingsSplit, random_split

#: sha256 of ml-100k/u.data as published in the data folder's README.
ML100K_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"

#: The benchmark split's seed and test share (fixed so every method and every run sees the same split).
SPLIT_SEED = 0
TEST_FRACTION = 0.2


class DatasetError(RuntimeError):
    """The dataset file is missing or is not the published one."""


def ml100k_path() -> Path:
    return config.path("OSR_DATA_DIR") / "movielens" / "ml-100k" / "u.data"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_ml100k(path: str | Path | None = None, verify: bool = True) -> pd.DataFrame:
    """The 100,000 ratings as a frame (user_id, item_id, rating, timestamp), after checking the file's sha256."""
    p = Path(path) if path is not None else ml100k_path()
    if not p.is_file():
        raise DatasetError(
            f"MovieLens 100K ratings not found at {p}. Put the GroupLens ml-100k folder under "
            f"$OSR_DATA_DIR/movielens/ (OSR_DATA_DIR={config.get('OSR_DATA_DIR')}) or pass its u.data path."
        )
    if verify:
        digest = _sha256(p)
        if digest != ML100K_SHA256:
            raise DatasetError(f"{p} has sha256 {digest}, expected {ML100K_SHA256}: not the published u.data")
    df = pd.read_csv(p, sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"],
                     dtype={"user_id": np.int32, "item_id": np.int32, "rating": np.float32, "timestamp": np.int64})
    return df


def ml100k_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION,
                 path: str | Path | None = None) -> RatingsSplit:
    """The fixed seeded 80/20 random split of MovieLens 100K used by the tests and bench/als.py."""
    return random_split(load_ml100k(path), test_fraction=test_fraction, seed=seed)
