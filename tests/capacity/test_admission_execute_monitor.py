"""Admission control, the effector and the worker-log parser, each on its own."""

from pathlib import Path

import pytest

from pipelines.capacity.admission import plan_admission
from pipelines.capacity.decision import Decision
from pipelines.capacity.execute import Effector
from pipelines.capacity.monitor import WorkerLogs, parse_timing

LINE = ("[2026-12-02 02:45:04,931] [20310] [INFO] process: 204 batches, 1748 records (8.6/batch), 1078 moments; "
        "per batch: chain 28.5 ms, state ack 5.0 ms, publish 4.3 ms ")


def test_admission_normal_degraded_then_admit_by_priority():
    assert plan_admission(90, 100).mode == "normal"
    deg = plan_admission(120, 100, candidates=10, degraded_top_k=3, score_share=0.5)  # cost 0.65 -> 153.8/s
    assert deg.mode == "degraded" and deg.top_k == 3 and deg.admit_share == 1.0
    adm = plan_admission(300, 100, candidates=10, degraded_top_k=3, score_share=0.5)
    assert adm.mode == "admission" and adm.admit_share == pytest.approx(100 / 0.65 / 300)
    admitted, deferred = adm.admit(["a", "b", "c", "d"], {"c": 9, "a": 5})
    assert admitted == ["c", "a"][: len(admitted)] and set(admitted) | set(deferred) == {"a", "b", "c", "d"}
    with pytest.raises(ValueError):
        plan_admission(1, 0)


def test_effector_starts_lowest_free_index_and_stops_the_highest():
    started, stopped = [], []
    e = Effector(start=lambda i: started.append(i) or 1000 + i, stop=lambda i: stopped.append(i) or "stopped")
    out = e.apply(Decision(0, "p", "scale_up", 0, 3, "r"))
    assert started == [0, 1, 2] and e.workers == 3 and "pid 1002" in out
    e.apply(Decision(1, "p", "scale_down_temporary", 3, 2, "r"))
    assert stopped == [2] and set(e.running) == {0, 1}
    e.apply(Decision(2, "p", "restore", 2, 3, "r"))
    assert started[-1] == 2


def test_effector_records_a_failed_start():
    def boom(i):
        raise RuntimeError("port taken")

    e = Effector(start=boom, stop=lambda i: "")
    assert "failed: port taken" in e.apply(Decision(0, "p", "scale_up", 0, 1, "r")) and e.workers == 0


def test_batch_timing_line_gives_busy_time_and_true_rate(tmp_path: Path):
    at, records, busy = parse_timing(LINE)
    assert records == 1748 and busy == pytest.approx(204 * (28.5 + 5.0 + 4.3) / 1000)
    assert parse_timing("[2026-12-02 02:45:04,931] [1] [INFO] something else") is None
    log = tmp_path / "w.log"
    log.write_text(LINE + "\n" + LINE[:40])  # a partial second line is left for the next read
    logs = WorkerLogs(interval_s=10)
    st = logs.read({"w0": log})["w0"]
    assert st.records == 1748 and st.interval_s == 10 and st.true_rate == pytest.approx(1748 / busy)
    assert st.busy_fraction == pytest.approx(busy / 10)
    with open(log, "a") as f:
        f.write(LINE[40:] + "\n")
    assert logs.read({"w0": log})["w0"].records == 1748  # the completed line, once
