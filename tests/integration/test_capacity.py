"""Capacity planning against the real stream: the monitor's lag and rates checked against the broker's
own offsets, and one scaling action end to end (the planner decides on a real sample, the effector
starts real Faust workers, the group rebalances the partitions among them, the lag falls to zero)."""

from __future__ import annotations


import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from stream_checks import wait_until
from stream_harness import running_stream, topic

from pipelines import config
from pipelines.capacity.loop import observation
from pipelines.capacity.monitor import Monitor
from pipelines.capacity.plan import Planner, PlannerConfig
from pipelines.ingest.kafka_clients import consumer_config, produce_waiting, producer_config
from pipelines.ingest.lag import group_lag
from pipelines.ops import demo
from pipelines.ops.commands.capacity import real_effector, worker_logs
from pipelines.synthetic import population as P
from pipelines.synthetic.replay import live_order

pytestmark = pytest.mark.integration

POP = P.PopulationParams(n_users=40, n_items=40, history_contexts_per_user=6, stream_contexts_per_user=14, seed=5)


def _produce(uploads) -> None:
    import orjson

    p = Producer(producer_config())
    for e, _t in uploads:
        produce_waiting(p, topic("sensor_raw"), e["user_id"].encode(), orjson.dumps(e))
        p.poll(0)
    assert p.flush(60) == 0


def _broker_offsets(group: str, name: str) -> tuple[int, int]:
    """(sum of log-end offsets, sum of committed offsets) asked of the broker directly."""
    c = Consumer(consumer_config(group))
    try:
        t = topic(name)
        parts = [TopicPartition(t, p) for p in c.list_topics(t, timeout=10).topics[t].partitions]
        ends = sum(c.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in parts)
        done = sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
        return ends, done
    finally:
        c.close()




def test_monitor_figures_match_the_broker_and_a_scale_up_drains_the_lag(broker):
    with running_stream(POP) as s:
        uploads = live_order(s.pop, "stream")
        half = len(uploads) // 2
        mon = Monitor(s.app_id, topic("sensor_raw"))
        eff = real_effector()
        try:
            first = mon.sample()
            assert first.lag == 0 and first.arrival_rate is None  # nothing produced, nothing to compare yet
            _produce(uploads[:half])
            second = mon.sample()
            # the monitor's rate times the interval is exactly what arrived; its lag is the broker's
            assert second.arrival_rate * (second.t - first.t) == pytest.approx(half)
            ends, done = _broker_offsets(s.app_id, "sensor_raw")
            assert (sum(second.end_offsets.values()), sum(second.committed.values())) == (ends, done) == (half, 0)
            assert second.lag == half == group_lag(s.app_id, [topic("sensor_raw")])[topic("sensor_raw")]
            _produce(uploads[half:])
            backlog = mon.sample()
            assert backlog.lag == len(uploads) and backlog.arrival_rate > 0

            # plan on the real sample: no worker runs and the backlog must drain within 5 s, so at a
            # service rate of 150 records/s (one worker's order of magnitude, bench/stream.py) M/M/c needs
            # more than one worker
            planner = Planner(PlannerConfig(sla_s=5.0, service_rate=150.0, drain_s=5.0, cap=4))
            obs = observation(backlog, 0.0, 12.0, eff.workers)
            d = planner.decide(obs)
            assert d.action == "scale_up" and d.workers_to >= 2, d.reason
            logs = {f"worker-{i}": demo.worker_service(i).log_file for i in range(d.workers_to)}
            mon.logs.read(logs)  # skip what earlier tests of the session logged there
            outcome = eff.apply(d)
            assert outcome.count("started worker") == d.workers_to, outcome

            # partitions rebalanced: the coordinator reports the group Stable with exactly the started workers
            # as members, and every worker's own log shows records taken (a worker owning no sensor.raw
            # partition takes none: not even ticks, which go only to the partitions a worker owns)
            admin = AdminClient({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP")})
            seen: dict = {}

            def stable():
                g = admin.describe_consumer_groups([s.app_id], request_timeout=10)[s.app_id].result()
                seen.update(state=g.state, members=len(g.members),
                            assignment=[[(tp.topic, tp.partition) for tp in m.assignment.topic_partitions]
                                        for m in g.members])
                return getattr(g.state, "name", "") == "STABLE" and len(g.members) == d.workers_to

            try:
                wait_until("group stable with every started worker a member", stable, 180)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; last seen {seen}") from None
            taken: dict[str, int] = {}

            def every_worker_took_records():
                for name, st in mon.logs.read(worker_logs(eff)).items():
                    taken[name] = taken.get(name, 0) + st.records
                return len(taken) == d.workers_to and all(taken.values())

            try:
                wait_until("every worker taking records", every_worker_took_records, 180, 2.0)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}: records per worker {taken}") from None

            # lag falls: drained to zero, and the monitor's processing rate saw the commits
            during = mon.sample()
            samples = [during]

            def lag_drained():
                samples.append(mon.sample())
                return samples[-1].lag == 0 and samples[-1]

            drained = wait_until("lag drained", lag_drained, 180, 1.0)
            assert drained.lag == 0 < backlog.lag and sum(drained.committed.values()) == len(uploads)
            assert _broker_offsets(s.app_id, "sensor_raw") == (len(uploads), len(uploads))
            # the latency of committed records is known in a sample that saw commits (the last one may see none)
            assert during.processing_rate is not None
            assert any(x.latency_p99_s is not None for x in samples if x.completed > 0)
            assert drained.members == d.workers_to and drained.settled
        finally:
            eff.stop_all()
            mon.close()
