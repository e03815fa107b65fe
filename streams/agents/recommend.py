"""state.features -> [score] -> osr.scores (every score, for the CRM) -> [tuner] -> notifications."""

from __future__ import annotations

from pipelines.online.osr_score import score_batch
from pipelines.online.tuner import TunerStage
from streams.app import app
from streams.topics import live_snapshot, notifications, osr_scores, state_features, tuner_states

tuner = TunerStage()


@app.agent(state_features)
async def score(stream):
    """Score micro-batches: one model call per batch, not per event (Faust's per-message cost dominates)."""
    async for batch in stream.take(200, within=0.3):
        for scored in score_batch(batch, live_snapshot.refresh()):
            await osr_scores.send(key=scored["user_id"].encode(), value=scored)


@app.agent(osr_scores)
async def tune(stream):
    """The Notification Frequency Tuner: at most one approved push per scored event."""
    async for scored in stream:
        uid = scored["user_id"]
        note, _reason, tuner_states[uid] = tuner.decide(scored, live_snapshot.refresh(), dict(tuner_states[uid]))
        if note is not None:
            await notifications.send(key=uid.encode(), value=note)
