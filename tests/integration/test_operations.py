"""What SREs, marketing ops and support see on a real worker: metrics, /rules, /customers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from app.cli import main
from app.worker.lag import ConsumerLagProbe, LagByPartition
from schemas.actions import Channel
from schemas.topics import TopicNames
from testkit.factories import click, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES
from tests.integration.http import get

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789-abcdefghij"


def test_rules_and_customer_endpoints(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES, KAIROS_CUSTOMER_API_TOKEN=TOKEN)
    worker = k.start_worker()

    status, _, rules = get(worker, "/rules")
    assert status == 200 and rules["version"].startswith("rs-")
    assert "loan-dropoff-digital-nudge" in {rule["id"] for rule in rules["rules"]}

    k.send_profiles(profile("C-API"))
    event = drop_off("C-API", step=4)
    k.send(k.topics.drop_off, event)
    k.collect([k.topics.actions(Channel.PUSH)], until=lambda r: len(r) >= 1)

    assert get(worker, "/customers/C-API")[0] == 401, "no token, no personal data"
    status, headers, _ = get(worker, "/customers/C-API", token="wrong-" + TOKEN)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")

    deadline = time.monotonic() + 10
    while True:  # the state is written once the action is acknowledged
        status, _, body = get(worker, "/customers/C-API", token=TOKEN)
        if body.get("recent_decisions") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and body["customer_id"] == "C-API"
    (decision,) = body["recent_decisions"]
    assert decision["rule_id"] == "loan-dropoff-digital-nudge"
    assert decision["outcome"] == "sent" and decision["channel"] == "push"
    assert body["state"]["event_counts"] == {"drop_off": 1}
    (contact,) = body["state"]["contacts"]  # stored as an array, shown by name
    assert contact["channel"] == "push" and contact["status"] == "sent"
    assert contact["rule_id"] == "loan-dropoff-digital-nudge" and contact["ref"]
    assert body["served_by"] == worker.base_url

    assert get(worker, "/customers/C-NOBODY", token=TOKEN)[0] == 404
    assert TOKEN not in (k.workdir / "worker-0.log").read_text(), "the token is never logged"


def test_the_customer_api_is_off_by_default(kairos: Any) -> None:
    worker = kairos(rules_yaml=IMMEDIATE_RULES).start_worker()
    status, _, body = get(worker, "/customers/C-ANY", token=TOKEN)
    assert status == 404 and "KAIROS_CUSTOMER_API_TOKEN" in body["error"]


def test_operational_metrics_move_under_traffic(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES, KAIROS_LAG_INTERVAL_S="0.5")
    worker = k.start_worker()
    customers = [f"C-M{i:02d}" for i in range(12)]
    k.send_profiles(*(profile(c) for c in customers))
    for c in customers:
        k.send(k.topics.app_click, click(c, screen="mortgage_calculator"))
    worker.wait_metric("kairos_actions_total", len(customers), channel="push")

    lag = worker.metric_samples("kairos_consumer_lag", topic=k.topics.app_click)
    assert sorted(int(labels["partition"]) for labels, _ in lag) == [0, 1, 2, 3]
    keys = worker.metric_samples("kairos_state_table_keys", table="customer_state")
    assert sum(value for _, value in keys) >= len(customers) * 0.5  # RocksDB's estimate
    assert worker.metric("kairos_faust_rebalance_done_latency_seconds_count") >= 1  # Faust
    assert worker.metric("kairos_faust_messages_received_total") > 0
    assert worker.metric("kairos_worker_ready") == 1
    assert worker.metric_samples("kairos_timers_pending", kind="deferred")
    assert worker.metric("kairos_decision_latency_seconds_count", since="ingested") >= len(
        customers
    )

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # committed every 0.5 s, read every 0.5 s
        lag = worker.metric_samples("kairos_consumer_lag", topic=k.topics.app_click)
        if sum(value for _, value in lag) == 0:
            break
        time.sleep(0.5)
    assert sum(value for _, value in lag) == 0, "lag drains once the worker caught up"


def test_lag_is_what_the_broker_says_the_group_has_not_committed(broker: Any) -> None:
    """Read from the broker, not from the worker: a worker that stopped fetching shows lag."""
    topic, group = f"lag-{time.time_ns()}", f"lag-group-{time.time_ns()}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    for _ in range(5):
        producer.send(topic, value=b"x", partition=0)
        producer.flush()  # one record per batch: Tansu reports batch starts as end offsets
    producer.close()
    probe = ConsumerLagProbe([broker.bootstrap], group, lambda: [(topic, 0)], interval_s=0.2)

    async def read_twice() -> list[LagByPartition]:
        task = asyncio.ensure_future(probe.run())
        readings = []
        try:
            await _until(lambda: bool(probe.lag))
            readings.append(dict(probe.lag))
            _commit(broker.bootstrap, group, topic, offset=3)
            await _until(lambda: probe.lag.get((topic, 0)) != readings[0][(topic, 0)])
            readings.append(dict(probe.lag))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return readings

    before, after = asyncio.run(read_twice())
    assert before == {(topic, 0): 5}, "nothing committed: everything is lag"
    assert after == {(topic, 0): 2}


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the probe did not read the broker in time"
        await asyncio.sleep(0.1)


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


def _ensure(monkeypatch: pytest.MonkeyPatch, broker: Any, prefix: str, partitions: int) -> int:
    """``kairos topics ensure`` for a deployment on ``prefix``; its exit code."""
    monkeypatch.setenv("KAIROS_BROKER_URL", broker.url)
    monkeypatch.setenv("KAIROS_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("KAIROS_PARTITIONS", str(partitions))
    return main(["topics", "ensure", "--timeout", "20"])


def test_topics_ensure_creates_every_topic_co_partitioned(
    broker: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"init{time.time_ns()}"
    assert _ensure(monkeypatch, broker, prefix, 3) == 0
    topics = TopicNames(prefix)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        for name in (*topics.inputs, *topics.outputs):
            assert consumer.partitions_for_topic(name) == {0, 1, 2}, name
        assert consumer.partitions_for_topic(topics.rules) == {0}
    finally:
        consumer.close()
    assert _ensure(monkeypatch, broker, prefix, 3) == 0, "idempotent"
    assert capsys.readouterr().out.endswith("0 topic(s) created; every Kairos topic exists\n")


def test_topics_ensure_refuses_topics_with_another_partition_count(
    broker: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"mismatch{time.time_ns()}"
    assert _ensure(monkeypatch, broker, prefix, 2) == 0
    assert _ensure(monkeypatch, broker, prefix, 4) == 2
    error = capsys.readouterr().err
    assert f"{prefix}.events.app_click has 2 partitions, expected 4" in error
    assert "co-partitioned" in error
