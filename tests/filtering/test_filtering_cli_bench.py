"""`osr filtering` subcommands and the filtering benchmark's smoke run."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pipelines.ops.commands import filtering as cli
from pipelines.filtering.kalman import filter_event
from pipelines.filtering.simulate import simulate_trace

ROOT = Path(__file__).resolve().parents[2]


def _run(argv):
    parser = argparse.ArgumentParser(prog="osr")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_simulate_prints_json(capsys):
    assert _run(["filtering", "simulate", "--kind", "walk", "--readings", "400", "--compact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["walk"]["position"]["ratio"] < 0.7
    assert out["walk"]["spikes_rejected_frac"] >= 0.9


def test_file_filters_uploads_and_resumes_from_state(tmp_path, capsys):
    tr = simulate_trace("run", n=300, seed=4)
    events = [tr.event(i, i + 60, event_id=f"e{i}", device_type="watch") for i in range(0, 300, 60)]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(e) + "\n" for e in events[:2]))
    second.write_text("".join(json.dumps(e) + "\n" for e in events[2:]))
    state = tmp_path / "state.json"
    outs = []
    for src in (first, second):
        dst = tmp_path / (src.stem + ".out.jsonl")
        assert _run(["filtering", "file", str(src), "-o", str(dst), "--state", str(state)]) == 0
        outs += [json.loads(line) for line in dst.read_text().splitlines()]
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == 3 and summary["devices"] == 1
    st = None
    for ev, got in zip(events, outs):  # same as filtering in one process
        want, st = filter_event(ev, st)
        assert got["x"] == want["x"] and got["hr"] == want["hr"]


def test_file_reports_bad_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "u"}\n')
    assert _run(["filtering", "file", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 1
    assert "line 1" in capsys.readouterr().err


def test_bench_quick_prints_json_last_line():
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "filtering.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["bench"] == "filtering"
    assert out["filter_event"]["readings_per_s"]["imm"]["cpu"] > 0
    devs = out["consensus"]["max_dev_from_centralized_m_by_iters"]
    assert devs["20"] < devs["5"]
