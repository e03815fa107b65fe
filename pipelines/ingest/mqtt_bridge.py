"""MQTT -> Kafka bridge: device uploads published on Mosquitto enter the stream's input topic.

Why a bridge and not devices producing to Kafka: phones and watches speak MQTT (small client,
flaky links, a broker that queues for them), Kafka is where the stream reads. The bridge keeps
the stream's guarantees at the seam:

* Topics. A device publishes on `osr/<device_type>/<person>/<device>`; the device type picks
  the Kafka topic (OSR_MQTT_TOPIC_MAP, default every type -> sensor.raw) and the person's user
  id is the Kafka key (the stream keeps per-person state by key).
* Contract. Each upload is validated like the stream does (`parse_sensor_event`) and the topic
  path must agree with the payload (device_type, user_id, device_id): a device cannot upload for
  someone else by naming them in the payload. A bad one goes to sensor.deadletter with its
  reason; its source is `mqtt:<topic>:<payload digest>`, the same on every redelivery, so the
  sink (keyed by source) stores it once.
* At least once. QoS 1, a fixed client id and a persistent session (MQTT 5, session expiry), so
  Mosquitto queues uploads while the bridge is away. A message is acknowledged (manual PUBACK,
  in the order received, as MQTT requires) only after Kafka confirmed its delivery, so a
  crashed bridge loses nothing: Mosquitto redelivers what was not acknowledged. Redelivered
  uploads carry the same event id; the stream dead-letters or drops them (pipelines.filtering.stage).

The loop is single-threaded (paho's `loop()` and the producer's `poll()` in turn), so the ack
queue needs no lock. An ack that belongs to an earlier connection is never sent: Mosquitto
resends those messages anyway, and their packet ids may already name new messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.kafka_clients import producer_config
from pipelines.ingest.validation import deadletter_record, parse_sensor_event
from pipelines.rate_limited_log import RateLimitedLog

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log, every_s=10.0)

#: First segment of every device topic; the bridge subscribes to everything below it, so a
#: malformed path is dead-lettered with its reason rather than silently never read.
TOPIC_ROOT = "osr"
SUBSCRIPTION = f"{TOPIC_ROOT}/#"
#: OSR_MQTT_TOPIC_MAP's wildcard entry: every device type without an entry of its own.
ANY_TYPE = "*"
#: Longest MQTT topic kept in a dead letter's source (a hostile topic can be 64 kB).
MAX_TOPIC_IN_SOURCE = 300
#: Seconds between writes of the stats file (cheap: one small JSON file).
STATS_EVERY_S = 0.5


# --- topics and the map ---------------------------------------------------------------------------

def device_topic(device_type: str, user_id: str, device_id: str) -> str:
    """The MQTT topic a device publishes its uploads on."""
    return f"{TOPIC_ROOT}/{device_type}/{user_id}/{device_id}"


def parse_topic_map(spec: str) -> dict[str, str]:
    """'phone=sensor.raw,watch=sensor.watch' or '*=sensor.raw' -> {device_type: topic} (names without
    OSR_TOPIC_PREFIX). Raises ValueError naming the bad entry: a typo must stop the bridge at start,
    not dead-letter every upload."""
    mapping: dict[str, str] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        dtype, sep, topic = (part.strip() for part in entry.partition("="))
        if not sep or not dtype or not topic or "/" in dtype or any(c.isspace() for c in topic):
            raise ValueError(f"OSR_MQTT_TOPIC_MAP entry {entry!r} is not <device_type>=<kafka topic> "
                             f"(or {ANY_TYPE}=<kafka topic>)")
        if dtype in mapping:
            raise ValueError(f"OSR_MQTT_TOPIC_MAP names device type {dtype!r} twice")
        mapping[dtype] = topic
    if not mapping:
        raise ValueError("OSR_MQTT_TOPIC_MAP is empty: no upload could go anywhere")
    return mapping


def topic_map(spec: str | None = None) -> dict[str, str]:
    """The configured map with full Kafka topic names (OSR_TOPIC_PREFIX added)."""
    raw = config.get("OSR_MQTT_TOPIC_MAP") if spec is None else spec
    return {dtype: config.topic(topic) for dtype, topic in parse_topic_map(raw).items()}


def kafka_topic_for(device_type: str, mapping: dict[str, str]) -> str | None:
    return mapping.get(device_type, mapping.get(ANY_TYPE))


def parse_device_topic(topic: str) -> tuple[tuple[str, str, str] | None, str | None]:
    """((device_type, person, device), None) for `osr/<device_type>/<person>/<device>`, else (None, reason)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or not all(parts[1:]):
        return None, (f"MQTT topic {_short(topic)!r} is not {TOPIC_ROOT}/<device_type>/<person>/<device> "
                      "(four non-empty segments)")
    return (parts[1], parts[2], parts[3]), None


def path_disagreement(path: tuple[str, str, str], upload: dict) -> str | None:
    """Why the topic path and a valid upload disagree, or None."""
    for name, said in zip(("device_type", "user_id", "device_id"), path):
        if upload[name] != said:
            return (f"topic path says {name} {_short(said, 80)!r} but the upload says "
                    f"{_short(upload[name], 80)!r}")
    return None


# --- one message ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Routed:
    """A good upload: where it goes in Kafka, its key (the person) and the payload as received."""

    topic: str
    key: bytes
    value: bytes
    event_id: str


@dataclass(frozen=True)
class Rejected:
    """A bad upload: the dead letter to send and its category (for the bridge's counts)."""

    category: str  # topic_path | payload | path_mismatch | unmapped
    key: bytes | None
    deadletter: dict


def payload_digest(payload: bytes) -> str:
    """Stable id of a payload (16 hex digits): a redelivered message gets the same dead-letter source."""
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def source_of(topic: str, payload: bytes) -> str:
    return f"mqtt:{_short(topic, MAX_TOPIC_IN_SOURCE)}:{payload_digest(payload)}"


def route(topic: str | bytes, payload: bytes, mapping: dict[str, str]) -> Routed | Rejected:
    """Decide one MQTT message: a Routed upload for Kafka or a Rejected one with its dead letter. Never raises."""
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    payload = bytes(payload)
    path, reason = parse_device_topic(topic)
    category, key = "topic_path", None
    if path is not None:
        key = path[1].encode("utf-8", "replace")
        upload, reason = parse_sensor_event(payload)
        category = "payload"
        if reason is None:
            reason, category = path_disagreement(path, upload), "path_mismatch"
        if reason is None:
            kafka_topic = kafka_topic_for(path[0], mapping)
            if kafka_topic is not None:
                return Routed(kafka_topic, upload["user_id"].encode(), payload, upload["event_id"])
            reason, category = (f"no Kafka topic mapped for device type {_short(path[0], 80)!r} "
                                "(OSR_MQTT_TOPIC_MAP)"), "unmapped"
    return Rejected(category, key, deadletter_record(payload, reason, source_of(topic, payload)))


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


# --- the running bridge ---------------------------------------------------------------------------

@dataclass
class BridgeStats:
    """What the bridge did since it started (also written to its stats file)."""

    pid: int = field(default_factory=os.getpid)
    connected: bool = False
    subscribed: bool = False
    connects: int = 0
    received: int = 0
    redelivered: int = 0  # messages Mosquitto flagged DUP: resent after a crash or a lost connection
    forwarded: int = 0  # confirmed by Kafka onto the mapped topic
    deadlettered: int = 0  # confirmed by Kafka onto the dead-letter topic
    acked: int = 0  # PUBACKs sent (each after its Kafka confirmation)
    stale_acks: int = 0  # confirmations of messages from an earlier connection: not acked, Mosquitto resends them
    ignored_while_stopping: int = 0  # received after the stop signal: not produced, not acked (resent next time)
    kafka_retries: int = 0
    pending: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    uptime_s: float = 0.0
    last_error: str | None = None


class _Entry:
    __slots__ = ("generation", "mid", "qos", "done")

    def __init__(self, generation: int, mid: int, qos: int):
        self.generation, self.mid, self.qos, self.done = generation, mid, qos, False


class Bridge:
    """One bridge process: a paho MQTT client (persistent session, manual acks) and a Kafka producer."""

    def __init__(self, client_id: str | None = None, host: str | None = None, port: int | None = None,
                 mapping: dict[str, str] | None = None, session_expiry_s: int | None = None,
                 receive_maximum: int | None = None, stats_file: Path | None = None):
        from confluent_kafka import Producer
        from paho.mqtt import client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client_id = client_id or config.get("OSR_MQTT_CLIENT_ID")
        self.host = host or config.get("OSR_MQTT_HOST")
        self.port = int(port or config.get("OSR_MQTT_PORT"))
        self.mapping = mapping if mapping is not None else topic_map()
        self.deadletter_topic = config.topic(TOPICS.sensor_deadletter)
        self.stats = BridgeStats()
        self.stats_file = stats_file
        self.generation = 0  # bumped on every (re)connect: acks of older connections are never sent
        self.queue: deque[_Entry] = deque()
        self.retry: list[tuple] = []
        self.stopping = False
        self.last_message = time.monotonic()
        self.producer = Producer(producer_config())
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(session_expiry_s if session_expiry_s is not None
                                          else config.get("OSR_MQTT_SESSION_EXPIRY_S"))
        props.ReceiveMaximum = int(receive_maximum or config.get("OSR_MQTT_INFLIGHT"))
        self.connect_properties = props
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_subscribe, c.on_message = self._on_subscribe, self._on_message
        self.client = c

    # paho callbacks (they run inside client.loop(), on this thread)
    def _on_connect(self, client, _userdata, flags, reason_code, _properties):
        if reason_code.is_failure:
            self.stats.last_error = f"MQTT connect refused: {reason_code}"
            _warn.warning("MQTT connect to %s:%s refused: %s", self.host, self.port, reason_code)
            return
        self.generation += 1
        self.stats.connected, self.stats.connects = True, self.stats.connects + 1
        log.info("connected to %s:%s as %s (session present: %s)", self.host, self.port, self.client_id,
                 flags.session_present)
        if self.stats.connects > 1 and not flags.session_present:
            log.warning("Mosquitto kept no session for %s: uploads published while the bridge was away were "
                        "not queued for it (session expired, or the broker lost its persistence)", self.client_id)
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties):
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self.stats.last_error = f"subscription to {SUBSCRIPTION} refused: {failed}"
            log.error(self.stats.last_error)
            return
        self.stats.subscribed = True
        self.write_stats()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        self.stats.connected = self.stats.subscribed = False
        if not self.stopping:
            _warn.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason_code)

    def _on_message(self, _client, _userdata, msg):
        if self.stopping:
            self.stats.ignored_while_stopping += 1  # never acked: Mosquitto redelivers it to the next bridge
            return
        self.last_message = time.monotonic()
        self.stats.received += 1
        self.stats.redelivered += bool(msg.dup)
        entry = _Entry(self.generation, msg.mid, msg.qos)
        if msg.qos > 0:
            self.queue.append(entry)
        decided = route(msg._topic, msg.payload, self.mapping)
        if isinstance(decided, Routed):
            args = (decided.topic, decided.key, decided.value, "forwarded")
        else:
            self.stats.by_category[decided.category] = self.stats.by_category.get(decided.category, 0) + 1
            args = (self.deadletter_topic, decided.key, json.dumps(decided.deadletter).encode(), "deadlettered")
        self._produce(entry, *args)

    # Kafka side
    def _produce(self, entry: _Entry, topic: str, key: bytes | None, value: bytes, counter: str) -> None:
        def delivered(err, _msg):
            if err is not None:
                if err.fatal():
                    raise RuntimeError(f"Kafka producer failed fatally: {err}")
                self.stats.kafka_retries += 1
                self.stats.last_error = f"Kafka delivery failed, retrying: {err}"
                _warn.warning("Kafka delivery to %s failed (%s); producing it again", topic, err)
                self.retry.append((entry, topic, key, value, counter))
                return
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
            entry.done = True
            self._ack_ready()

        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _ack_ready(self) -> None:
        """Ack the confirmed prefix of the queue, in the order Mosquitto sent the messages."""
        q = self.queue
        while q and q[0].done:
            e = q.popleft()
            if e.generation == self.generation and self.stats.connected:
                self.client.ack(e.mid, e.qos)
                self.stats.acked += 1
            else:
                self.stats.stale_acks += 1

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        self.stats.pending = len(self.queue)
        tmp = self.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.stats)))
        os.replace(tmp, self.stats_file)

    def run(self, stop: threading.Event, max_runtime_s: float | None = None, idle_exit_s: float | None = None,
            on_progress: Callable[[BridgeStats], None] | None = None, progress_every_s: float = 10.0,
            drain_timeout_s: float = 60.0) -> BridgeStats:
        t0 = time.monotonic()
        next_progress, next_stats = t0 + progress_every_s, t0
        backoff, next_connect = 0.5, t0
        connected_once = False
        try:
            while not stop.is_set():
                now = time.monotonic()
                if max_runtime_s is not None and now - t0 >= max_runtime_s:
                    break
                if idle_exit_s is not None and not self.queue and now - self.last_message >= idle_exit_s:
                    break
                if self.client.socket() is None:  # not connected: (re)connect with a growing pause
                    if now >= next_connect:
                        try:
                            if connected_once:
                                self.client.reconnect()
                            else:
                                self.client.connect(self.host, self.port, keepalive=30, clean_start=False,
                                                    properties=self.connect_properties)
                                connected_once = True
                            backoff = 0.5
                        except OSError as exc:
                            self.stats.last_error = f"cannot reach MQTT broker {self.host}:{self.port}: {exc}"
                            _warn.warning("cannot reach MQTT broker %s:%s (%s); retrying", self.host, self.port, exc)
                            next_connect, backoff = now + backoff, min(backoff * 2, 10.0)
                    self.producer.poll(0.05)
                else:
                    self.client.loop(timeout=0.002 if self.queue else 0.05)  # on error paho closes the socket
                self.producer.poll(0)
                self._retry_failed()
                now = time.monotonic()
                if now >= next_stats:  # the stats file is what supervisors (demo, tests) wait on
                    self.stats.uptime_s = round(now - t0, 1)
                    self.write_stats()
                    next_stats = now + STATS_EVERY_S
                if now >= next_progress:
                    if on_progress is not None:
                        on_progress(self.stats)
                    next_progress = now + progress_every_s
        finally:
            self._drain(drain_timeout_s)
            self.stats.uptime_s = round(time.monotonic() - t0, 1)
            self.write_stats()
        return self.stats

    def _retry_failed(self) -> None:
        if self.retry:
            todo, self.retry = self.retry, []
            for args in todo:
                self._produce(*args)

    def _drain(self, timeout_s: float) -> None:
        """Stop taking messages, wait for Kafka to confirm what is in flight, send those acks, disconnect.

        What is not confirmed within timeout_s stays unacknowledged: Mosquitto resends it."""
        self.stopping = True
        deadline = time.monotonic() + timeout_s
        while self.queue and time.monotonic() < deadline:
            self.producer.poll(0.05)
            self._retry_failed()
            if self.client.socket() is not None:
                self.client.loop(timeout=0.01)
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        if self.client.socket() is not None:
            for _ in range(20):  # let the last PUBACKs leave before DISCONNECT
                if not self.client.want_write():
                    break
                self.client.loop(timeout=0.05)
            self.client.disconnect()  # a normal DISCONNECT keeps the session (expiry > 0)
            self.client.loop(timeout=0.05)


def run_bridge(max_runtime_s: float | None = None, idle_exit_s: float | None = None,
               on_progress: Callable[[BridgeStats], None] | None = None, progress_every_s: float = 10.0,
               stats_file: Path | None = None, **bridge_options) -> BridgeStats:
    """Run the bridge until SIGTERM / SIGINT (or the given limits); a clean stop acks everything Kafka confirmed."""
    stop = threading.Event()
    bridge = Bridge(stats_file=stats_file, **bridge_options)
    in_main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        return bridge.run(stop, max_runtime_s, idle_exit_s, on_progress, progress_every_s)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
