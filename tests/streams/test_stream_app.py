"""streams.app is the Faust app and nothing else: importing it imports no agent (no import circle),
and autodiscover finds exactly the one agent (process, over sensor.raw and stream.ticks) and the
per-worker tasks and timers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipelines import config

AGENTS = {"streams.agents.moments.process"}
#: Per-worker tasks and timers (not agents: every worker must run them, not one member of the group).
TASKS = {
    ("streams.agents.control", "follow_model_announcements"),
    ("streams.agents.control", "rate_limit_library_logs"),
    ("streams.agents.moments", "tick"),
    ("streams.agents.moments", "follow_tuner_rules"),
    ("streams.agents.moments", "follow_admission_plan"),
    ("streams.agents.moments", "log_batch_timing"),
}

PROBE = """
import json, sys
import streams.app
before = sorted(m for m in sys.modules if m.startswith("streams"))
agents_before = sorted(streams.app.app.agents)
streams.app.app.discover()
print(json.dumps({"modules": before, "agents_before": agents_before,
                  "agents": sorted(streams.app.app.agents),
                  "tasks": sorted([t.__module__, t.__name__] for t in streams.app.app._app_tasks)}))
"""


def test_app_imports_no_agent_and_discovery_finds_the_one_agent(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in config.SETTINGS}
    env["OSR_HOME"] = str(tmp_path / "osr_home")
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=config.PROJECT_ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["modules"] == ["streams", "streams.app", "streams.consumer"]  # no agent, no topics module
    assert out["agents_before"] == []
    assert set(out["agents"]) == AGENTS and len(out["agents"]) == 1
    assert {tuple(t) for t in out["tasks"]} == TASKS and len(out["tasks"]) == len(TASKS)
    assert (tmp_path / "osr_home" / "faust" / "osr-stream").is_dir()  # the data dir Faust needs


def test_the_agent_reads_uploads_and_ticks_from_co_partitioned_topics():
    import streams.app
    import streams.topics as topics
    from streams.agents import moments

    streams.app.app.discover()
    assert set(streams.app.app.agents) == AGENTS
    agent = streams.app.app.agents["streams.agents.moments.process"]
    assert agent.channel.topics == ("sensor.raw", "stream.ticks") == (moments.RAW, moments.TICKS)
    # a tick on partition p must reach the worker that owns p of sensor.raw: same partition count
    assert topics.sensor_raw.partitions == topics.stream_ticks.partitions == topics.PARTITIONS
    assert topics.person_states.partitions == topics.PARTITIONS  # the table's changelog, co-partitioned too
    from streams.agents import control

    for module, name in TASKS:
        assert callable(getattr(control if module.endswith("control") else moments, name))
