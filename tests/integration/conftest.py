"""Fixtures that start the real embedded broker and real ``kairos worker`` processes.

Each test gets its own topic prefix and consumer group on one session-wide broker, and
every process is stopped by PID even when the test fails.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from app.kafka import EmbeddedBroker, WorkerProcess, ensure_topics, free_port
from app.settings import EXAMPLE_RULES
from schemas.topics import TopicNames

PARTITIONS = 4
_counter = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@dataclass
class KairosUnderTest:
    """A worker on its own topics, plus helpers to talk to it over Kafka."""

    broker: EmbeddedBroker
    topics: TopicNames
    env: dict[str, str]
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _producer: KafkaProducer | None = None

    def start_worker(self, **extra_env: str) -> WorkerProcess:
        index = len(self.workers)
        worker = WorkerProcess(
            {**self.env, **extra_env}, free_port(), self.workdir / f"worker-{index}.log"
        ).start()
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, linger_ms=2)
        return self._producer

    def send(
        self, topic: str, value: dict[str, Any] | bytes, key: str | bytes | None = None
    ) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        if key is None and isinstance(value, dict):
            key = value.get("customer_id")
        key_bytes = key.encode() if isinstance(key, str) else key
        self.producer.send(topic, key=key_bytes, value=raw)
        self.producer.flush()

    def send_profiles(self, *profiles: dict[str, Any]) -> None:
        """Send profiles and wait until the worker has applied them.

        Profiles and events travel on different topics, so without this wait an event can
        overtake its customer's profile and be (rightly) suppressed for lack of consent.
        """
        running = [worker for worker in self.workers if worker.is_running()]

        def applied() -> float:  # partitions may be split between several workers
            return sum(
                w.metric("kairos_events_consumed_total", event_type="profile") for w in running
            )

        before = applied()
        for value in profiles:
            self.send(self.topics.profile, value)
        deadline = time.monotonic() + 30
        while applied() < before + len(profiles) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert applied() >= before + len(profiles), "the workers did not apply the profiles"

    def collect(
        self,
        topics: list[str],
        until: Callable[[list[tuple[str, dict[str, Any]]]], bool],
        timeout: float = 30.0,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Read ``topics`` from the start until ``until(records)`` holds or time runs out."""
        consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=self.broker.bootstrap,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            consumer_timeout_ms=300,
        )
        records: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for message in consumer:
                    records.append((message.topic, json.loads(message.value)))
                if until(records):
                    break
        finally:
            consumer.close()
        return records

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self._producer is not None:
            self._producer.close()


@pytest.fixture
def kairos(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Callable[..., KairosUnderTest]]:
    """Factory: ``kairos(rules_path=...)`` gives an isolated Kairos on the shared broker."""
    made: list[KairosUnderTest] = []

    def make(
        rules_path: Path = EXAMPLE_RULES, rules_yaml: str | None = None, **env: str
    ) -> KairosUnderTest:
        name = f"t{next(_counter)}x{int(time.time() * 1000) % 10**8}"
        if rules_yaml is not None:
            rules_path = tmp_path / f"rules-{name}"
            rules_path.mkdir()
            (rules_path / "rules.yaml").write_text(textwrap.dedent(rules_yaml))
        topics = TopicNames(name)
        ensure_topics(broker.bootstrap, topics, PARTITIONS)
        env = {
            "KAIROS_BROKER_URL": broker.url,
            "KAIROS_BROKER_FLAVOR": "tansu",
            "KAIROS_APP_ID": f"{name}-app",
            "KAIROS_TOPIC_PREFIX": name,
            "KAIROS_PARTITIONS": str(PARTITIONS),
            "KAIROS_STATE_DIR": str(tmp_path / "state"),
            "KAIROS_RULES_PATH": str(rules_path),
            **env,
        }
        under_test = KairosUnderTest(broker, topics, env, tmp_path)
        made.append(under_test)
        return under_test

    yield make
    for under_test in made:
        under_test.close()
