"""The messages between stages, each defined once: what travels on which topic.

Why TypedDicts: agents pass plain dicts (Faust's per-message cost already dominates,
so no object is built per message), yet each shape has one typed definition here.
Everything that needs a message's fields derives them from this module: the sink's
column lists, the state vector the propensity model trains and serves on
(`STATE_VECTOR`), the agent tests' checks of what each agent emits, and the test
that holds the DDL in `sql/migrations/` to these fields. A field added here shows
up everywhere, or a test fails.

Fields marked `Annotated[..., STATE]` form the state vector V(state), in this order.
"""

import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, NotRequired, TypedDict, Union

from pipelines import config

#: Marks a FeatureRow field as part of the state vector the models see.
STATE = "state-vector"


# --- topics --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topics:
    """Every stream topic, pre-created before any worker or checker subscribes (see STACK-NOTES).
    Names are without the configured prefix; `config.topic(name)` adds it."""

    sensor_raw: str = "sensor.raw"
    sensor_filtered: str = "sensor.filtered"
    sensor_deadletter: str = "sensor.deadletter"
    state_features: str = "state.features"
    osr_scores: str = "osr.scores"
    push_approved: str = "push.approved"  # the tuner's approved pushes, at least once
    tuner_decisions: str = "tuner.decisions"  # every decision of the tuner with its reason (osr tuner explain)
    notifications: str = "notifications"  # the push gateway's output: each moment's push once
    control_models: str = "control.models"
    stream_ticks: str = "stream.ticks"  # workers' clock ticks per partition: release moments held on quiet partitions
    profiles_raw: str = "profiles.raw"
    profiles_updates: str = "profiles.updates"
    control_routing: str = "control.routing"
    qos_predictions: str = "qos.predictions"
    ops_capacity: str = "ops.capacity"

    def all(self) -> list[str]:
        return [config.topic(v) for v in self.__dict__.values()]


TOPICS = Topics()


# --- identities ----------------------------------------------------------------------------------

def event_id_for(device_id: str, moment: str) -> str:
    """A device's event ids are scoped to it: "<device_id>:<moment>". Why: an event id reused by
    another person or device is then visible in the message itself, without a global registry."""
    return f"{device_id}:{moment}"


def event_belongs_to(event_id: str, device_id: str) -> bool:
    return event_id.startswith(device_id + ":") and len(event_id) > len(device_id) + 1


# --- sensor.raw ----------------------------------------------------------------------------------

class Upload(TypedDict):
    """One device's batch of 1 Hz readings (arrays), so per-message cost is paid once per ~60 readings."""

    event_id: str  # event_id_for(device_id, ...): scoped to the device
    user_id: str
    device_id: str  # registered to user_id (ref.devices)
    device_type: str  # phone / watch
    ts: list[float]  # epoch seconds, strictly increasing
    x: list[float]  # metres in the city frame
    y: list[float]
    acc: list[float]  # linear acceleration |a| - g, m/s^2 (-1 g .. 16 g)
    hr: NotRequired[list[float | None]]  # bpm; null where the device has no reading


# --- sensor.filtered -----------------------------------------------------------------------------

class FilteredUpload(TypedDict):
    """An upload after the per-device Kalman filters: positions, velocities and levels per reading."""

    event_id: str
    user_id: str
    device_id: str
    device_type: str
    ts: list[float]
    x: list[float]
    y: list[float]
    vx: list[float]  # m/s
    vy: list[float]
    hr: list[float | None]  # null only while no heart rate was ever seen
    acc: list[float]
    rejected: list[bool]  # the fix was gated out as a spike
    spikes_rejected: int


# --- state.features ------------------------------------------------------------------------------

class FeatureRow(TypedDict):
    """The state vector of one moment, computed alike in the stream and in history backfills."""

    event_id: str
    user_id: str
    device_id: str
    device_type: str
    ts: float  # time of the last reading
    source: str  # stream / history
    speed_mps: Annotated[float, STATE]
    heading_deg: Annotated[float, STATE]
    dist_home_m: Annotated[float | None, STATE]  # None for a person the snapshot does not know
    dist_work_m: Annotated[float | None, STATE]
    dist_store_m: Annotated[float | None, STATE]
    hr_pct_peak: Annotated[float | None, STATE]  # None when the device has no heart-rate sensor
    hr_rate_bpm_per_min: Annotated[float | None, STATE]
    activity: Annotated[float, STATE]  # std of filtered acceleration
    hour_of_day: Annotated[int, STATE]
    day_of_week: Annotated[int, STATE]
    n_readings: int
    spikes_rejected: int
    # The paper's transformations (migration 062, which appends them; DuckLake cannot add a NOT NULL
    # column, so the ones always computed are None only on rows stored before it):
    min_since_workout: Annotated[float | None, STATE]  # since the person's last workout moment; None: none seen
    activity_level: Annotated[int | None, STATE]  # 0 sedentary, 1 light, 2 moderate, 3 vigorous
    approach_store_mps: Annotated[float | None, STATE]  # closing speed to the nearest store, > 0 approaching
    approach_home_mps: Annotated[float | None, STATE]  # None for a person the snapshot does not know
    approach_work_mps: Annotated[float | None, STATE]
    x_m: float | None  # the last filtered position (the tuner's staleness rule), not in the state vector
    y_m: float | None


# --- osr.scores ----------------------------------------------------------------------------------

class ScoredItem(TypedDict):
    """One candidate of a scored moment: raw = F(preference, propensity), osr = min-max scaled raw."""

    item_id: str
    category: str
    preference: float  # E(item | R(user)), ALS, scaled to [0, 1] per person
    propensity: float  # E(item | V(state)), the propensity model
    raw_score: float
    osr_score: float


class ScoredEvent(TypedDict):
    """Every candidate of one moment (the CRM sees all of them; the tuner picks at most one)."""

    event_id: str
    user_id: str
    ts: float
    model_id: str
    scores: list[ScoredItem]


# --- notifications -------------------------------------------------------------------------------

class Notification(TypedDict):
    """An approved push. notification_id = event_id:item_id, so a replay cannot make a second row."""

    notification_id: str
    event_id: str
    user_id: str
    item_id: str
    category: str
    ts: float
    osr_score: float
    threshold: float
    rule_scope: str  # which tuner rule's threshold applied
    model_id: str


# --- tuner.decisions -----------------------------------------------------------------------------

class TunerDecision(TypedDict):
    """What the tuner decided for one scored moment and why: approved, refused by a rule, or dropped
    at push time because the person's state had moved on (`osr tuner explain` reads these)."""

    event_id: str
    user_id: str
    ts: float  # the moment's time
    approved: bool
    item_id: str | None  # the approved item (None when refused)
    reason: str  # "approved", "quiet hours", "stale: ...", ...
    rule_scope: str | None  # the rule that decided, where one did
    threshold: float | None
    rules_version: int | None  # the tuner rules' version the worker held
    model_id: str


# --- sensor.deadletter ---------------------------------------------------------------------------

class DeadLetter(TypedDict):
    """A message a stage could not take: why, where it came from, and the payload as received."""

    reason: str
    source: str  # topic:partition:offset
    event_id: str | None
    payload: str


# --- control.models ------------------------------------------------------------------------------

class ModelAnnouncement(TypedDict):
    """A newly published snapshot: workers reload it at once."""

    model_id: str
    snapshot: str


MESSAGES: dict[str, type] = {
    "sensor_raw": Upload,
    "sensor_filtered": FilteredUpload,
    "state_features": FeatureRow,
    "osr_scores": ScoredEvent,
    "push_approved": Notification,
    "tuner_decisions": TunerDecision,
    "notifications": Notification,
    "sensor_deadletter": DeadLetter,
    "control_models": ModelAnnouncement,
}


# --- derived views of the definitions ------------------------------------------------------------

def fields(message: type) -> list[str]:
    """Field names of a message, in definition order."""
    return list(typing.get_type_hints(message).keys())


def required_fields(message: type) -> list[str]:
    return [f for f in fields(message) if f in message.__required_keys__]


def not_null_fields(message: type) -> list[str]:
    """Required fields whose type does not admit None (the NOT NULL columns of its table)."""
    hints = typing.get_type_hints(message, include_extras=True)
    return [f for f in required_fields(message) if not _admits_none(_strip(hints[f]))]


def state_vector() -> list[str]:
    """The FeatureRow fields marked STATE, in order: what the models see."""
    hints = typing.get_type_hints(FeatureRow, include_extras=True)
    return [f for f, t in hints.items() if typing.get_origin(t) is Annotated and STATE in t.__metadata__]


STATE_VECTOR: list[str] = state_vector()


def _strip(t):
    """The bare type under Annotated[...] / NotRequired[...]."""
    while typing.get_origin(t) in (Annotated, NotRequired):
        t = typing.get_args(t)[0]
    return t


def _admits_none(t) -> bool:
    return _is_union(t) and type(None) in typing.get_args(t)


def _is_union(t) -> bool:
    return typing.get_origin(t) in (Union, types.UnionType)


def _compile(t):
    """A checker (value, where) -> reason or None for type `t`, built once per field: the stream checks
    every feature row and scored moment, and walking the typing objects per value cost ~0.5 ms a row."""
    t = _strip(t)
    if _is_union(t):
        none_ok = type(None) in typing.get_args(t)
        subs = [_compile(a) for a in typing.get_args(t) if a is not type(None)]

        def check_union(value, where):
            if value is None and none_ok:
                return None
            problems = [c(value, where) for c in subs]
            return None if any(p is None for p in problems) else problems[0]
        return check_union
    origin = typing.get_origin(t)
    if origin is list:
        (inner,) = typing.get_args(t)
        item = _compile(inner)

        def check_list(value, where):
            if value is None:
                return f"{where} is null"
            if not isinstance(value, list):
                return f"{where} is {type(value).__name__}, not a list"
            for i, v in enumerate(value):
                p = item(v, f"{where}[{i}]")
                if p:
                    return p
            return None
        return check_list
    if isinstance(t, type) and issubclass(t, dict) and hasattr(t, "__required_keys__"):
        return lambda value, where: f"{where} is null" if value is None else problem(t, value, where)
    if t is bool:
        return lambda value, where: (f"{where} is null" if value is None else
                                     None if isinstance(value, bool) else f"{where} is {type(value).__name__}, not bool")
    if t is int:
        return lambda value, where: (f"{where} is null" if value is None else
                                     None if isinstance(value, int) and not isinstance(value, bool)
                                     else f"{where} is {type(value).__name__}, not int")
    if t is float:
        def check_float(value, where):
            if value is None:
                return f"{where} is null"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{where} is {type(value).__name__}, not a number"
            return None if math.isfinite(value) else f"{where} is not finite"
        return check_float
    if t is str:
        return lambda value, where: (f"{where} is null" if value is None else
                                     None if isinstance(value, str) else f"{where} is {type(value).__name__}, not str")
    raise TypeError(f"contracts: no check for type {t!r}")


@functools.lru_cache(maxsize=None)
def _checkers(message: type) -> tuple:
    hints = typing.get_type_hints(message, include_extras=True)
    return tuple((f, _compile(t)) for f, t in hints.items())


def _check(value, t, where: str) -> str | None:
    return _compile(t)(value, where)


def problem(message: type, value, where: str | None = None) -> str | None:
    """Why `value` is not a valid `message`, or None. Unknown extra keys are allowed (forward compatible)."""
    where = where or message.__name__
    if not isinstance(value, dict):
        return f"{where}: expected a JSON object, got {type(value).__name__}"
    missing = [f for f in message.__required_keys__ if f not in value]
    if missing:
        return f"{where}: missing {sorted(missing)}"
    for f, check in _checkers(message):
        if f in value:
            p = check(value[f], f"{where}.{f}")
            if p:
                return p
    return None
