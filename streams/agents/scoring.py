"""state.features -> [score] -> osr.scores (every score, for the CRM) -> [tuner] -> notifications."""

from __future__ import annotations

from pipelines.scoring import score_batch
from pipelines.tuner import RuleBook, decide
from streams.app import app, live_snapshot, notifications, osr_scores, state_features, tuner_states

_rulebooks: dict[str, RuleBook] = {}


@app.agent(state_features)
async def score(stream):
    """Score micro-batches: one model call per batch, not per event (Faust's per-message cost dominates)."""
    async for batch in stream.take(200, within=0.3):
        snap = live_snapshot.refresh()
        for scored in score_batch(batch, snap):
            await osr_scores.send(key=scored["user_id"].encode(), value=scored)


@app.agent(osr_scores)
async def tune(stream):
    """The Notification Frequency Tuner: at most one approved push per scored event."""
    async for scored in stream:
        snap = live_snapshot.refresh()
        rules = _rulebooks.get(snap.model_id)
        if rules is None:
            rules = _rulebooks[snap.model_id] = RuleBook(snap.rules)
        uid = scored["user_id"]
        note, _reason, state = decide(scored, rules, snap.preferences.get(uid), dict(tuner_states[uid]))
        tuner_states[uid] = state
        if note is not None:
            await notifications.send(key=uid.encode(), value=note)
