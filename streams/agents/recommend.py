"""state.features -> [score] -> osr.scores (every score, for the CRM) -> [tuner] -> push.approved.
The push gateway (pipelines.online.push_gateway, its own process) turns push.approved into
`notifications`, each moment's push once."""

from __future__ import annotations

from pipelines.online.osr_score import score_stage
from pipelines.online.tuner import TunerStage
from streams.app import app
from streams.topics import live_snapshot, osr_scores, push_approved, sensor_deadletter, state_features, tuner_states

tuner = TunerStage()


@app.agent(state_features)
async def score(stream):
    """Score micro-batches: one model call per batch, not per event (Faust's per-message cost dominates)."""
    async for batch in stream.take(200, within=0.3):
        scored, dead = score_stage(batch, live_snapshot.refresh())
        for s in scored:
            await osr_scores.send(key=s["user_id"].encode(), value=s)
        for d in dead:
            await sensor_deadletter.send(key=None, value=d)


@app.agent(osr_scores)
async def tune(stream):
    """The Notification Frequency Tuner: at most one approved push per scored moment, the same one on a replay."""
    async for scored in stream:
        uid = scored["user_id"]
        note, _reason, tuner_states[uid] = tuner.decide(scored, live_snapshot.refresh(), dict(tuner_states[uid]))
        if note is not None:
            await push_approved.send(key=uid.encode(), value=note)
