"""streams.agents.recommend: score (state.features -> osr.scores, in micro-batches) and tune
(osr.scores -> push.approved, tuner states in a table), each in a test context."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from agent_harness import on_the_wire, sent, wait_until

import streams.topics as topics
from pipelines.contracts import FeatureRow, Notification, ScoredEvent, ScoredItem, problem
from pipelines.filtering.stage import filter_upload
from pipelines.online.features import state_features
from streams.agents import recommend


@pytest.fixture
def feature_rows(uploads, people, stream_pop, snapshot_tables):
    """One feature row per upload of the four people, made by the pipeline's own filter and features."""
    users = snapshot_tables["users"].set_index("user_id").to_dict("index")
    stores_xy = snapshot_tables["stores"][["x", "y"]].to_numpy(dtype=float)
    rows = []
    for upload in uploads[:12]:
        filtered, dead, _ = filter_upload(json.dumps(upload).encode(), {}, "test:0:0", upload["user_id"])
        assert dead is None
        rows.append(on_the_wire(state_features(filtered, users.get(upload["user_id"]), stores_xy)))
    assert {r["user_id"] for r in rows} == set(people.values())  # every role is in the batch
    assert all(problem(FeatureRow, r) is None for r in rows)
    return rows


def expected_candidates(tables, meta, user_id) -> list[str]:
    """The person's top-N in rank order, else the snapshot's most popular items."""
    topn = tables["topn"][tables["topn"].user_id == user_id].sort_values("rank")
    if len(topn):
        return list(topn.item_id)
    return list(tables["items"].sort_values("popularity", ascending=False).head(meta["top_n"]).item_id)


async def test_each_feature_row_gets_one_scored_event(outbox, live, feature_rows, snapshot_tables, snapshot_meta):
    async with recommend.score.test_context() as agent:
        for row in feature_rows:
            await agent.put(row, key=row["user_id"].encode())
        await wait_until(lambda: outbox["osr_scores"].await_count >= len(feature_rows), what="every score")

    out = sent(outbox["osr_scores"])
    assert len(out) == len(feature_rows)
    assert [v["event_id"] for _k, v in out] == [r["event_id"] for r in feature_rows]
    category = snapshot_tables["items"].set_index("item_id").category
    for (key, scored), row in zip(out, feature_rows):
        assert problem(ScoredEvent, scored) is None
        on_the_wire(scored)
        assert key == row["user_id"].encode() and scored["user_id"] == row["user_id"]
        assert scored["model_id"] == live and scored["ts"] == row["ts"]
        assert [s["item_id"] for s in scored["scores"]] == expected_candidates(snapshot_tables, snapshot_meta,
                                                                              row["user_id"])
        for s in scored["scores"]:
            assert problem(ScoredItem, s) is None
            assert s["category"] == category[s["item_id"]]
            assert 0.0 <= s["osr_score"] <= 1.0


async def test_rows_sharing_an_event_id_are_not_merged(outbox, live, feature_rows, snapshot_tables, snapshot_meta):
    """A redelivered row, and another person's row reusing its event id, in one batch: still one
    ScoredEvent per row, each with only its own person's candidates."""
    first = feature_rows[0]
    other = next(r for r in feature_rows if r["user_id"] != first["user_id"])
    rows = [first, dict(first), {**other, "event_id": first["event_id"]}]
    async with recommend.score.test_context() as agent:
        for row in rows:
            await agent.put(row, key=row["user_id"].encode())
        # the batch window is 0.3 s: 1.5 s is ample, and a merged batch shows in the assertion below
        await wait_until(lambda: outbox["osr_scores"].await_count >= len(rows), timeout=1.5, fail=False)

    out = [v for _k, v in sent(outbox["osr_scores"])]
    assert [(o["event_id"], o["user_id"]) for o in out] == [(r["event_id"], r["user_id"]) for r in rows]
    for o, row in zip(out, rows):
        assert problem(ScoredEvent, o) is None
        assert [s["item_id"] for s in o["scores"]] == expected_candidates(snapshot_tables, snapshot_meta,
                                                                          row["user_id"])


async def test_scores_in_micro_batches_not_per_event(outbox, live, feature_rows, monkeypatch):
    """One propensity-model call per micro-batch, not one per event."""
    booster = topics.live_snapshot.refresh().booster
    model_calls = []
    predict = booster.predict

    def recording_predict(X, *args, **kwargs):
        model_calls.append(len(X))
        return predict(X, *args, **kwargs)

    monkeypatch.setattr(booster, "predict", recording_predict)
    rows = [{**r, "event_id": f"{r['event_id']}#{k}"} for k in range(2) for r in feature_rows]
    async with recommend.score.test_context() as agent:
        for row in rows:
            await agent.put(row, key=row["user_id"].encode())
        await wait_until(lambda: outbox["osr_scores"].await_count >= len(rows), what="every score")

    out = [v for _k, v in sent(outbox["osr_scores"])]
    assert [o["event_id"] for o in out] == [r["event_id"] for r in rows]  # every row scored once, in order
    assert sum(model_calls) == sum(len(o["scores"]) for o in out)  # every candidate went through the model
    # puts take milliseconds, the batch window is 0.3 s: at most one window boundary falls among them
    assert 1 <= len(model_calls) <= 2, model_calls


# --- tune --------------------------------------------------------------------------------------------

NOON = datetime(2026, 11, 16, 12, 0, tzinfo=timezone.utc).timestamp()


def scored_event(event_id: str, user_id: str, scores: dict[str, float], model_id: str = "m1", ts: float = NOON):
    """A ScoredEvent with the given osr scores by item (categories as in the test snapshot)."""
    category = {"i0": "coffee", "i1": "lunch", "i2": "electronics", "i3": "coffee", "i4": "lunch",
                "i5": "electronics"}
    event = {"event_id": event_id, "user_id": user_id, "ts": ts, "model_id": model_id,
             "scores": [{"item_id": i, "category": category[i], "preference": 1.0, "propensity": s, "raw_score": s,
                         "osr_score": s} for i, s in scores.items()]}
    assert problem(ScoredEvent, event) is None
    return event


def counted(state: dict) -> dict:
    """The part of a tuner state that counts pushes (the tuner may keep more, e.g. what it decided)."""
    return {k: state.get(k) for k in ("day", "count", "last_push")}


async def test_score_above_threshold_is_notified(outbox, changelog, live, people):
    user = people["known"]
    async with recommend.tune.test_context() as agent:
        await agent.put(scored_event("e1", user, {"i0": 0.9, "i1": 0.4, "i2": 0.1}), key=user.encode())
        await wait_until(lambda: outbox["push_approved"].await_count >= 1, what="a notification")

    [(key, note)] = sent(outbox["push_approved"])
    assert key == user.encode()
    assert problem(Notification, note) is None
    on_the_wire(note)
    assert note["notification_id"] == "e1:i0"  # the best candidate
    assert (note["event_id"], note["user_id"], note["item_id"], note["category"]) == ("e1", user, "i0", "coffee")
    assert (note["osr_score"], note["threshold"], note["rule_scope"]) == (0.9, 0.15, "global")
    assert note["model_id"] == live and note["ts"] == NOON
    state = topics.tuner_states[user]
    assert counted(state) == {"day": "2026-11-16", "count": 1, "last_push": {"coffee": NOON}}
    assert changelog["tuner_states"] == [(user, state)]


async def test_tuner_state_from_the_table_holds_back_a_similar_push(outbox, changelog, live, people):
    user = people["known"]
    async with recommend.tune.test_context() as agent:
        await agent.put(scored_event("e1", user, {"i0": 0.9}), key=user.encode())
        # an hour later: coffee again (within the 4 h gap, so held back), lunch is new (pushed)
        await agent.put(scored_event("e2", user, {"i3": 0.95}, ts=NOON + 3600), key=user.encode())
        await agent.put(scored_event("e3", user, {"i3": 0.95, "i1": 0.5}, ts=NOON + 3700), key=user.encode())
        await wait_until(lambda: outbox["push_approved"].await_count >= 2, what="two notifications")

    assert [v["notification_id"] for _k, v in sent(outbox["push_approved"])] == ["e1:i0", "e3:i1"]
    assert topics.tuner_states[user]["count"] == 2
    assert len(changelog["tuner_states"]) == 3


@pytest.mark.parametrize("case", ["below_threshold", "opted_out"])
async def test_no_notification(case, outbox, changelog, live, people):
    if case == "below_threshold":
        # coffee under the global 0.15; electronics over it but under its class threshold 0.25
        user, scores = people["known"], {"i0": 0.1, "i1": 0.05, "i2": 0.2}
    else:
        user, scores = people["opted_out"], {"i4": 0.99, "i3": 0.9}
    other = people["popular"]  # no preferences in the snapshot: the defaults apply
    async with recommend.tune.test_context() as agent:
        await agent.put(scored_event("e1", user, scores), key=user.encode())
        # a notifiable event after it: once its notification is out, the first one was decided
        await agent.put(scored_event("e2", other, {"i0": 0.8}), key=other.encode())
        await wait_until(lambda: outbox["push_approved"].await_count >= 1, what="the second event's notification")

    [(key, note)] = sent(outbox["push_approved"])
    assert key == other.encode() and note["event_id"] == "e2"
    assert counted(topics.tuner_states[user]) == {"day": "2026-11-16", "count": 0, "last_push": {}}
    assert [k for k, _v in changelog["tuner_states"]] == [user, other]
