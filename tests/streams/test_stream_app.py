"""streams.app is the Faust app and nothing else: importing it imports no agent (no import circle),
and autodiscover finds exactly the four agents and the control tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipelines import config

AGENTS = {
    "streams.agents.sensors.filter_uploads",
    "streams.agents.sensors.build_features",
    "streams.agents.recommend.score",
    "streams.agents.recommend.tune",
}
#: Per-worker tasks (not agents: every worker must run them, not one member of the group).
TASKS = {"follow_model_announcements", "rate_limit_library_logs"}

PROBE = """
import json, sys
import streams.app
before = sorted(m for m in sys.modules if m.startswith("streams"))
agents_before = sorted(streams.app.app.agents)
streams.app.app.discover()
print(json.dumps({"modules": before, "agents_before": agents_before,
                  "agents": sorted(streams.app.app.agents)}))
"""


def test_app_imports_no_agent_and_discovery_finds_all_four(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in config.SETTINGS}
    env["OSR_HOME"] = str(tmp_path / "osr_home")
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=config.PROJECT_ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["modules"] == ["streams", "streams.app"]  # no agent, no topics module
    assert out["agents_before"] == []
    assert set(out["agents"]) == AGENTS and len(out["agents"]) == 4
    assert (tmp_path / "osr_home" / "faust" / "osr-stream").is_dir()  # the data dir Faust needs


def test_the_app_under_test_has_exactly_the_four_agents():
    import streams.app

    streams.app.app.discover()
    assert set(streams.app.app.agents) == AGENTS
    channels = {name: agent.channel.get_topic_name() for name, agent in streams.app.app.agents.items()}
    assert channels == {
        "streams.agents.sensors.filter_uploads": "sensor.raw",
        "streams.agents.sensors.build_features": "sensor.filtered",
        "streams.agents.recommend.score": "state.features",
        "streams.agents.recommend.tune": "osr.scores",
    }
    from streams.agents import control

    for name in TASKS:
        assert callable(getattr(control, name))
