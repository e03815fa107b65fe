"""The stream's drain check (pipelines.ops.demo.wait_drained) is not over while a moment is held for a
device: its uploads are consumed (no lag) but its results come only when a tick releases it. Seen in
the stream pipeline test: four uploads whose partner was dead-lettered were released after the drain,
when the sink had already stopped, and never reached the store."""

import pytest

from pipelines.ingest import changelog
from pipelines.ops import demo


@pytest.fixture
def script(monkeypatch):
    """Lags and held moments per check, in order; the last entry repeats."""
    calls = {"lag": 0, "held": 0}

    def install(lags: list[int], held: list[list[str]]):
        def group_lag(group, topics):
            i = min(calls["lag"] - 1, len(lags) - 1)
            return {topics[0]: lags[i]} if group == "g" else {}

        def waiting():
            i = min(calls["held"], len(held) - 1)
            calls["held"] += 1
            return held[i]

        def groups():
            calls["lag"] += 1
            return {"g": ["sensor.raw"]}

        monkeypatch.setattr(demo, "group_lag", group_lag)
        monkeypatch.setattr(demo, "stream_groups", groups)
        monkeypatch.setattr(changelog, "waiting_for_devices", waiting)
        monkeypatch.setattr(demo.time, "sleep", lambda s: None)
        return calls

    return install


def test_no_lag_but_a_held_moment_is_not_drained(script):
    calls = script([5, 0], [["u1:m1"], ["u1:m1"], []])
    demo.wait_drained(timeout=60, progress=lambda m: None)
    assert calls["held"] == 3  # asked until the changelog showed nothing held
    assert calls["lag"] >= 6  # and the lag checked once more after that, for the released results


def test_a_moment_held_for_good_times_out_naming_it(script, tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_LOG_DIR", str(tmp_path))
    (tmp_path / "faust-worker.log").write_text("line 1\nprocess: 3 batches\n")
    script([0], [["u9:m9"]])
    monotonic = iter(range(0, 10_000, 7))
    monkeypatch.setattr(demo.time, "monotonic", lambda: next(monotonic))
    with pytest.raises(TimeoutError) as err:
        demo.wait_drained(timeout=60, progress=lambda m: None)
    assert "u9:m9" in str(err.value) and "process: 3 batches" in str(err.value)  # the worker's log tail too


def test_keys_as_faust_writes_them():
    assert changelog._key(b'"u00007"') == "u00007"
    assert changelog._key(b"#sensor.raw offset of partition 3") == "#sensor.raw offset of partition 3"
    assert changelog._key(b'"broken') == '"broken'
