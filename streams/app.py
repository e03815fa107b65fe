"""The Faust application, and nothing else: settings come from pipelines.config (OSR_* variables).

Topics and tables are in streams/topics.py, agents in streams/agents/ grouped by
domain; `autodiscover` imports the agents when a worker starts, so this module
imports none of them (no import circle). Run a worker with
`faust -A streams.app worker -l info` (or `osr stream worker`).
"""

from __future__ import annotations

import faust

from pipelines import config
from streams.consumer import Transport


def _broker_url() -> str:
    return ";".join(f"kafka://{h.strip()}" for h in config.get("OSR_KAFKA_BOOTSTRAP").split(","))


DATADIR = config.path("OSR_HOME") / "faust" / config.get("OSR_FAUST_APP_ID")
DATADIR.mkdir(parents=True, exist_ok=True)  # Faust refuses to start without it

app = faust.App(
    config.get("OSR_FAUST_APP_ID"),
    broker=_broker_url(),
    # only the agent modules this worker runs (OSR_STREAM_AGENTS): the profile stream is a separate app
    autodiscover=[f"streams.agents.{m.strip()}" for m in config.get("OSR_STREAM_AGENTS").split(",") if m.strip()],
    store="memory://",  # tables are rebuilt from their changelog topics on restart
    value_serializer="json",
    topic_partitions=int(config.get("OSR_TOPIC_PARTITIONS")),
    topic_replication_factor=int(config.get("OSR_TOPIC_REPLICATION")),  # changelog + leader topics (3 on a cluster)
    # join a group in seconds, not ~23 s (see STACK-NOTES)
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    web_bind="127.0.0.1",  # the worker's web server listens on loopback only
    web_host="127.0.0.1",
    web_port=int(config.get("OSR_FAUST_WEB_PORT")),
    datadir=str(DATADIR),
)


# the consumer side with a configurable fetch wait (streams/consumer.py); producers stay Faust's
app.transport = Transport(app.conf.broker_consumer, app)
