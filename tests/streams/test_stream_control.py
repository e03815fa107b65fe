"""streams.agents.control: an announcement on control.models makes the worker serve the new snapshot at once.

The follower task is a consumer outside the group (so every worker hears every announcement); what it
does per announcement is `handle_announcement`, tested here without a broker. The broadcast itself is
proven against the real broker with two workers in tests/integration/test_two_workers_broker_restart.py.
"""

from __future__ import annotations

import json

import streams.topics as topics
from agent_harness import wait_until
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


async def test_scores_use_the_announced_model(outbox, live, publish, monkeypatch):
    """After the announcement the score agent stamps the new model id on what it sends."""
    from streams.agents.recommend import score

    live_snapshot = topics.live_snapshot
    monkeypatch.setattr(live_snapshot, "_time", lambda: 1000.0)
    row = {"event_id": "someone-phone:e1", "user_id": "someone", "device_id": "someone-phone", "device_type": "phone",
           "ts": 1_795_000_000.0, "source": "stream", "speed_mps": 1.0, "heading_deg": 90.0, "dist_home_m": None,
           "dist_work_m": None, "dist_store_m": 50.0, "hr_pct_peak": None, "hr_rate_bpm_per_min": None,
           "activity": 0.5, "hour_of_day": 12, "day_of_week": 0, "n_readings": 60, "spikes_rejected": 0}
    live_snapshot.refresh()
    publish("m2")
    control.handle_announcement(b'{"model_id": "m2", "snapshot": "m2"}')
    async with score.test_context() as agent:
        await agent.put(row, key=b"someone")
        await wait_until(lambda: outbox["osr_scores"].await_count >= 1, what="a score")
    assert outbox["osr_scores"].await_args.kwargs["value"]["model_id"] == "m2"
