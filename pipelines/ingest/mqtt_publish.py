"""Publishes a population's uploads over MQTT, as devices would, for the demo, tests and the bench.

Why the same mixing as the Kafka producer (`producer.mixed_uploads`): the same seed gives the
same uploads and the same malformed ones whichever way they enter, so a run through MQTT
reconciles like a run straight into Kafka. MQTT adds one way to be wrong that Kafka has not: a
topic path that disagrees with the payload (PATH_KINDS), which the bridge dead-letters.

One client publishes for every device (like a gateway); each upload goes to its device's topic
`osr/<device_type>/<person>/<device>` with QoS 1, and the run waits for every PUBACK.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipelines import config
from pipelines.ingest.mqtt_bridge import device_topic, payload_digest
from pipelines.ingest.producer import CORRUPTIONS, ProduceReport, corrupt, mixed_uploads
from pipelines.synthetic.population import Population

#: A valid upload on a topic path that does not match it (each must be dead-lettered by the bridge).
PATH_KINDS = ("path_other_person", "path_other_device", "path_other_type", "path_too_short")
#: Default bad kinds over MQTT: the payload corruptions plus the path ones.
MQTT_KINDS = CORRUPTIONS + PATH_KINDS
#: A fragment of the dead-letter reason each bad kind gets (the validator's or the bridge's words), so a
#: run can tell every dead letter came back for the reason its upload was broken.
REASON_FRAGMENT = {
    "not_json": "not JSON", "missing_field": "missing", "length_mismatch": "readings, ts has",
    "non_finite": "non-finite", "hr_out_of_range": "heart rate", "ts_not_increasing": "not strictly increasing",
    "wrong_device_type": "device_type 'toaster'", "json_array": "not a JSON object",
    "path_other_person": "topic path says user_id", "path_other_device": "topic path says device_id",
    "path_other_type": "topic path says device_type", "path_too_short": "is not osr/<device_type>/<person>/<device>",
}
#: MQTT 5 PUBACK reason "No matching subscribers": nobody (no bridge session) will ever read the upload.
NO_MATCHING_SUBSCRIBERS = 16


def topic_for(event: dict, kind: str | None) -> str:
    """The MQTT topic an upload is published on: its device's, or a wrong one for a path kind."""
    dtype, user, device = event["device_type"], event["user_id"], event["device_id"]
    if kind == "path_other_person":
        return device_topic(dtype, user + "-other", device)
    if kind == "path_other_device":
        return device_topic(dtype, user, device + "-other")
    if kind == "path_other_type":
        return device_topic("watch" if dtype == "phone" else "phone", user, device)
    if kind == "path_too_short":
        return f"osr/{dtype}/{user}"
    return device_topic(dtype, user, device)


@dataclass
class PublishReport(ProduceReport):
    """ProduceReport plus what only MQTT tells: bad uploads by payload digest (the bridge's dead-letter
    source ends with it) and PUBACKs saying no subscriber matched (uploads nobody will read)."""

    bad_by_digest: dict[str, str] = field(default_factory=dict)
    no_subscribers: int = 0
    seconds: float = 0.0


def publish_population(pop: Population, malformed_share: float = 0.02, seed: int = 11, limit: int | None = None,
                       on_progress=None, progress_every: int = 500, rate_per_s: float | None = None,
                       kinds: tuple[str, ...] = MQTT_KINDS, make_bad=None, host: str | None = None,
                       port: int | None = None, max_pending: int = 500, timeout_s: float = 120.0,
                       stop: threading.Event | None = None) -> PublishReport:
    """Publish the stream split of `pop` over MQTT (QoS 1) and wait for every PUBACK; returns what was sent.

    make_bad(event, kind, rng) -> bytes builds a payload kind (default `corrupt`); path kinds send the
    valid upload on a wrong topic. max_pending bounds uploads published but not yet acknowledged.
    stop: set it to end early (what was published until then is reported).
    """
    from paho.mqtt import client as mqtt

    rng = np.random.default_rng(seed)
    payload_bad = make_bad or (lambda event, kind, _rng: corrupt(event, kind))

    def bad(event, kind, r):
        return payload_bad(event, kind, r) if kind not in PATH_KINDS else _json(event)

    report = PublishReport()
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c, _u, _flags, reason_code, _props):
        (refused.append(str(reason_code)) if reason_code.is_failure else connected.set())

    def on_publish(_c, _u, _mid, reason_code, _props):
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            report.no_subscribers += 1

    host, port = host or config.get("OSR_MQTT_HOST"), int(port or config.get("OSR_MQTT_PORT"))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"osr-publisher-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.on_connect, client.on_publish = on_connect, on_publish
    client.max_inflight_messages_set(max_pending)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    t0 = time.monotonic()
    try:
        if not connected.wait(timeout_s) or refused:
            raise RuntimeError(f"MQTT broker {host}:{port} did not accept the publisher: {refused or 'no CONNACK'}")
        pending: deque = deque()
        for k, event, kind, value in mixed_uploads(pop, rng, malformed_share, limit, kinds, bad, report):
            if stop is not None and stop.is_set():
                break
            if rate_per_s:
                ahead = t0 + k / rate_per_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if kind is not None:
                report.bad_by_digest[payload_digest(value)] = kind
            pending.append(client.publish(topic_for(event, kind), value, qos=1))
            while len(pending) > max_pending:
                _wait(pending.popleft(), timeout_s)
            if on_progress and (k + 1) % progress_every == 0:
                on_progress(report)
        while pending:
            _wait(pending.popleft(), timeout_s)
    finally:
        report.seconds = round(time.monotonic() - t0, 3)
        client.disconnect()
        client.loop_stop()
    return report


def _json(event: dict) -> bytes:
    import json

    return json.dumps(event).encode()


def _wait(info, timeout_s: float) -> None:
    info.wait_for_publish(timeout_s)
    if not info.is_published():
        raise RuntimeError(f"MQTT broker did not acknowledge upload (mid {info.mid}) within {timeout_s:.0f} s")
