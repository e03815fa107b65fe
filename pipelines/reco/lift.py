"""OSR lift: does pushing at the right moment sell more than pushing the same
recommender's items at random moments?

Uses the generator's ground truth P(purchase | person, item, true state), so the
figure is an expectation, free of sampling noise. The state-blind baseline pushes each
person's ALS top-1 item at moments drawn uniformly from the same streamed moments,
as many pushes as the OSR made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.store.db import run_sql_file
from pipelines.synthetic.population import Population


def osr_lift(con, pop: Population, seed: int = 0, baseline_draws: int = 20) -> dict:
    notes = run_sql_file(con, "lift_pushes")
    moments = run_sql_file(con, "lift_moments")
    top1 = run_sql_file(con, "live_top1").set_index("user_id").item_id
    if notes.empty or moments.empty:
        raise ValueError("no notifications or no streamed moments in the store: run the stream first")

    def expected(rows: pd.DataFrame) -> np.ndarray:
        return np.array([pop.purchase_probability(r.user_id, [r.item_id], r.state)[0]
                         for r in rows.itertuples(index=False)])

    osr_rate = float(expected(notes).mean())
    rng = np.random.default_rng(seed)
    candidates = moments[moments.user_id.isin(top1.index)]
    rates = []
    for _ in range(baseline_draws):
        pick = candidates.iloc[rng.integers(0, len(candidates), len(notes))]
        rates.append(expected(pick.assign(item_id=pick.user_id.map(top1))).mean())
    base = float(np.mean(rates))
    return {"pushes": int(len(notes)), "osr_purchase_rate": osr_rate, "state_blind_purchase_rate": base,
            "lift": osr_rate / base if base > 0 else float("inf"), "baseline_draws": baseline_draws,
            "pushes_by_true_state": notes.state.value_counts().to_dict()}
