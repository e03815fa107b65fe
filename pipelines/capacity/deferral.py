"""Admission control inside the stream's chain: whose moments are scored this micro-batch, whose
wait, and where the wait is kept so that no moment is lost (pipelines.online.chain calls this).

Why the wait lives in the person's stream state: a deferred moment must survive a crash and a
rebalance like a moment held for a device does. The state is logged before the batch's results
are published, so a deferred moment's feature row goes into `state["deferred"]` (with how many
batches it has waited) in the same write that takes its upload; the worker's `HeldPeople` keeps
people with deferred rows among those a caught-up tick looks at (and a partition gained after a
crash finds them in its recovered table), and the person's next upload brings them too.

What is deferred: only the scoring and the tuner's decision. The filter and the features run for
everyone (the state must advance in record order, and the feature rows are published at once), so
deferring saves the score stage's share of a record's cost and no more (see
`plan_admission(defer_saves="score")`).

Priority (who is admitted first, `AdmissionPlan.admit`): the best OSR score of the person's last
scored moment (kept as `state["best"]` while admission control is active: a person likely to get a
push is served first), plus one for every batch their oldest deferred moment has already waited,
so that everyone deferred is admitted before anyone deferred fewer times (no one waits forever).
A person never scored under admission control has priority 0 (ties: by id).

Redelivery: a batch that scored deferred rows remembers them with the records that brought the
person in (`state["late"]`), so a replay of that batch after a crash scores them again (the
tuner's memory returns the same decision); see pipelines.filtering.stage, "Redelivery".
"""

from __future__ import annotations

from pipelines.capacity.admission import AdmissionPlan
from pipelines.contracts import FeatureRow
from pipelines.online.features import FEATURE_COLUMNS

#: What a worker runs when no plan was ever recorded, or the store never answered.
NORMAL = AdmissionPlan("normal", None, 1.0, "no admission plan recorded")


def is_normal(plan: AdmissionPlan | None) -> bool:
    return plan is None or (plan.top_k is None and plan.admit_share >= 1.0)


def _row(values: list) -> FeatureRow:
    return dict(zip(FEATURE_COLUMNS, values))


def _values(row: FeatureRow) -> list:
    return [row[c] for c in FEATURE_COLUMNS]


def waiting(state: dict | None, sources: list[str]) -> list[tuple[FeatureRow, int]]:
    """(row, batches waited) of the person's moments whose scoring waits, oldest first: the rows
    deferred before, and, when one of `sources` (this call's records and tick) brought the person
    into the batch that scored deferred rows late, those rows again (a replay after a crash)."""
    if not state:
        return []
    out = [(_row(v), int(w)) for v, w in state.get("deferred") or ()]
    late = state.get("late")
    if late and set(late["by"]) & set(sources):
        out += [(_row(v), int(w)) for v, w in late["rows"]]
    return out


def merge(waited: list[tuple[FeatureRow, int]], rows: list[FeatureRow]) -> list[tuple[FeatureRow, int]]:
    """The rows to score for one person, each moment once (a replayed row may also be waiting)."""
    seen: dict[str, int] = {}
    out: list[tuple[FeatureRow, int]] = []
    for row, w in [*waited, *((r, 0) for r in rows)]:
        k = seen.get(row["event_id"])
        if k is None:
            seen[row["event_id"]] = len(out)
            out.append((row, w))
        elif w > out[k][1]:
            out[k] = (out[k][0], w)
    return out


def priority(state: dict, rows: list[tuple[FeatureRow, int]]) -> float:
    """The best score of the person's last scored moment plus the batches their oldest moment waited."""
    return float(state.get("best") or 0.0) + max((w for _r, w in rows), default=0)


def defer(state: dict, rows: list[tuple[FeatureRow, int]]) -> None:
    """Keep the rows in the state, one more batch waited each."""
    state["deferred"] = [[_values(r), w + 1] for r, w in rows]
    state.pop("late", None)


def admitted(state: dict, rows: list[tuple[FeatureRow, int]], sources: list[str]) -> None:
    """The person is scored this batch: nothing waits any more; the rows that had waited are
    remembered with the records that brought the person in, for a replay of this batch."""
    state.pop("deferred", None)
    late = [[_values(r), w] for r, w in rows if w > 0]
    if late and sources:
        state["late"] = {"by": list(sources), "rows": late}
    else:
        state.pop("late", None)


def note_best(state: dict, scored: dict) -> None:
    state["best"] = max((s["osr_score"] for s in scored["scores"]), default=0.0)


def annotation(waits: int, top_k: int | None, n_candidates: int) -> str:
    """What a decision's reason adds when its moment was degraded or deferred ('' when neither)."""
    parts = []
    if waits:
        parts.append(f"deferred {waits} batch{'es' if waits > 1 else ''} by admission control")
    if top_k is not None and n_candidates > top_k:
        parts.append(f"degraded: top {top_k} of {n_candidates} candidates scored")
    return f" [{'; '.join(parts)}]" if parts else ""
