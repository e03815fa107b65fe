"""A small propensity model for tests of scoring and the stream (shared by tests/unit and tests/streams)."""

from __future__ import annotations

#: Levels of the propensity model's categorical inputs.
CATEGORIES = {"device_type": ["phone", "watch"], "category": ["coffee", "electronics", "lunch"],
              "offer_type": ["bogo", "discount"]}


def small_propensity_model(n_estimators: int = 30) -> str:
    """A LightGBM model that learned: coffee sells (p ~ 0.9), everything else rarely (p ~ 0.05)."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from pipelines.online.features import NUMERIC_FEATURES
    from pipelines.online.osr_score import model_frame

    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({c: rng.uniform(0, 10, n) for c in NUMERIC_FEATURES})
    df["device_type"] = rng.choice(CATEGORIES["device_type"], n)
    df["category"] = rng.choice(CATEGORIES["category"], n)
    df["price"] = rng.uniform(1, 50, n)
    df["offer_type"] = rng.choice(CATEGORIES["offer_type"], n)
    coffee = (df.category == "coffee").to_numpy()
    y = np.where(coffee, rng.random(n) < 0.9, rng.random(n) < 0.05).astype(int)
    model = lgb.LGBMClassifier(n_estimators=n_estimators, learning_rate=0.2, min_child_samples=5, verbose=-1,
                               n_jobs=1, random_state=0)
    model.fit(model_frame(df, CATEGORIES), y)
    return model.booster_.model_to_string()


def small_items():
    """Six items in the model's three categories (two each), with prices, offers and popularity."""
    import pandas as pd

    return pd.DataFrame({
        "item_id": ["i0", "i1", "i2", "i3", "i4", "i5"],
        "category": ["coffee", "lunch", "electronics", "coffee", "lunch", "electronics"],
        "price": [3.0, 12.0, 300.0, 4.0, 9.0, 120.0],
        "offer_type": ["bogo", "discount", "discount", "bogo", "bogo", "discount"],
        "popularity": [5.0, 1.0, 9.0, 0.0, 3.0, 7.0],
    })
