"""streams.agents.control: an announcement on control.models makes the worker serve the new snapshot at once.

The follower task is a consumer outside the group (so every worker hears every announcement); what it
does per announcement is `handle_announcement`, tested here without a broker. The broadcast itself is
proven against the real broker with two workers in tests/integration/test_two_workers_broker_restart.py.
"""

from __future__ import annotations

import json

import streams.topics as topics
from agent_harness import run_batch, sent, upload_record
from pipelines.contracts import ModelAnnouncement, problem
from streams.agents import control


async def test_announcement_reloads_the_live_snapshot_at_once(live, publish, monkeypatch):
    live_snapshot = topics.live_snapshot
    clock = [1000.0]
    monkeypatch.setattr(live_snapshot, "_time", lambda: clock[0])  # frozen: the 5 s poll never comes round
    assert live_snapshot.refresh().model_id == live

    folder = publish("m2")
    assert live_snapshot.refresh().model_id == live  # without an announcement, still the old one
    announcement = {"model_id": "m2", "snapshot": str(folder)}
    assert problem(ModelAnnouncement, announcement) is None

    assert control.handle_announcement(json.dumps(announcement).encode()) == "m2"
    served = live_snapshot.refresh()
    assert served.model_id == "m2" and served.folder == folder
    assert clock == [1000.0]


async def test_a_garbled_announcement_still_reloads_what_is_live(live, publish, monkeypatch):
    """The announcement is only a nudge: the LIVE pointer decides, so even an unreadable message reloads it."""
    monkeypatch.setattr(topics.live_snapshot, "_time", lambda: 1000.0)
    topics.live_snapshot.refresh()
    publish("m3")
    assert control.handle_announcement(b"\xff not json") == "m3"


async def test_scores_use_the_announced_model(outbox, live, publish, uploads, people, monkeypatch):
    """After the announcement the process agent stamps the new model id on what it scores and decides."""
    live_snapshot = topics.live_snapshot
    monkeypatch.setattr(live_snapshot, "_time", lambda: 1000.0)  # frozen: only the announcement reloads
    user = people["popular"]  # one registered device: each upload is a whole moment
    first, second = [u for u in uploads if u["user_id"] == user][:2]
    await run_batch([upload_record(first, 0)], outbox, monkeypatch)
    publish("m2")
    await run_batch([upload_record(second, 1)], outbox, monkeypatch)
    control.handle_announcement(b'{"model_id": "m2", "snapshot": "m2"}')
    third = {**second, "event_id": second["event_id"] + "-again",
             "ts": [t + 600.0 for t in second["ts"]]}  # a later moment of the same phone
    await run_batch([upload_record(third, 2)], outbox, monkeypatch)
    assert [v["model_id"] for _k, v in sent(outbox["osr_scores"])] == [live, live, "m2"]
    assert [v["model_id"] for _k, v in sent(outbox["tuner_decisions"])] == [live, live, "m2"]
