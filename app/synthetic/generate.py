"""``kairos generate``: seeded synthetic traffic to JSONL files or to Kafka.

One generator (:mod:`app.synthetic`) feeds the demo, the tests, the benchmarks and the
backtest, so what marketing ops replay offline is what the live worker was shown. Files are
written in production order — late events where they were produced, duplicates twice — as
``profiles.jsonl`` and ``events.jsonl``, the two inputs ``kairos backtest`` takes.
Kafka output is paced either by the simulated clock (real time: each event goes out when
it happens, so a worker on the wall clock sees a live stream) or at a fixed rate (load).
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from app.synthetic.config import SyntheticConfig, SyntheticRecord
from app.synthetic.poison import poison_messages
from app.synthetic.traffic import traffic
from schemas.codec import encode, encode_event
from schemas.profile import CustomerProfile
from schemas.topics import TopicNames

#: Seconds between progress lines on stderr.
PROGRESS_EVERY_S = 2.0


class Sink(Protocol):
    """Where generated records go."""

    def profile(self, profile: CustomerProfile, raw: bytes) -> None: ...

    def event(self, topic: str, key: bytes, raw: bytes) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """``profiles.jsonl`` and ``events.jsonl`` in a directory, one wire message per line."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.profiles: IO[bytes] = (directory / "profiles.jsonl").open("wb")
        self.events: IO[bytes] = (directory / "events.jsonl").open("wb")

    def profile(self, profile: CustomerProfile, raw: bytes) -> None:
        self.profiles.write(raw + b"\n")

    def event(self, topic: str, key: bytes, raw: bytes) -> None:
        self.events.write(raw + b"\n")

    def close(self) -> None:
        self.profiles.close()
        self.events.close()


class KafkaSink:
    """The input topics of a Kairos deployment, keyed by customer id like real producers."""

    def __init__(self, bootstrap: list[str], topics: TopicNames) -> None:
        from kafka import KafkaProducer

        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)

    def profile(self, profile: CustomerProfile, raw: bytes) -> None:
        self.producer.send(self.topics.profile, key=profile.customer_id.encode(), value=raw)

    def event(self, topic: str, key: bytes, raw: bytes) -> None:
        self.producer.send(topic, key=key, value=raw)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


@dataclass(frozen=True)
class Pacing:
    """How fast records go out: by the simulated clock, at a rate, or as fast as possible."""

    realtime: bool = False
    rate: float = 0.0  # events per second; 0 = no limit


@dataclass(frozen=True)
class GenerateSummary:
    """What one run wrote."""

    profiles: int
    events: int
    poison: int
    seconds: float


def write_traffic(
    config: SyntheticConfig,
    sink: Sink,
    topics: TopicNames,
    pacing: Pacing,
    poison_every: int = 0,
    progress: IO[str] | None = sys.stderr,
) -> GenerateSummary:
    """Generate ``config``'s traffic into ``sink``; poison messages every ``poison_every``."""
    poison = itertools.cycle(list(poison_messages(random.Random(config.seed))))
    started = time.monotonic()
    origin_wall = time.time()
    next_progress = started + PROGRESS_EVERY_S
    profiles = events = bad = 0
    try:
        for record in traffic(config):
            _wait_for(record, config, pacing, events, started, origin_wall)
            if isinstance(record.model, CustomerProfile):
                sink.profile(record.model, encode(record.model))
                profiles += 1
                continue
            _send_event(sink, topics, record)
            events += 1
            if poison_every and events % poison_every == 0:
                key, raw = next(poison)
                sink.event(topics.drop_off, key or b"", raw)
                bad += 1
            if progress is not None and time.monotonic() >= next_progress:
                elapsed = time.monotonic() - started
                print(
                    f"generated {events:,} events ({events / elapsed:,.0f}/s), "
                    f"simulated time {record.at:%Y-%m-%d %H:%M}",
                    file=progress,
                    flush=True,
                )
                next_progress += PROGRESS_EVERY_S
    finally:
        sink.close()
    return GenerateSummary(profiles, events, bad, time.monotonic() - started)


def _send_event(sink: Sink, topics: TopicNames, record: SyntheticRecord) -> None:
    event = record.model
    assert not isinstance(event, CustomerProfile)
    sink.event(
        topics.for_event_type(event.event_type), event.customer_id.encode(), encode_event(event)
    )


def _wait_for(
    record: SyntheticRecord,
    config: SyntheticConfig,
    pacing: Pacing,
    sent: int,
    started: float,
    origin_wall: float,
) -> None:
    if pacing.realtime:
        due = origin_wall + (record.at - config.start).total_seconds()
        delay = due - time.time()
    elif pacing.rate > 0:
        delay = started + sent / pacing.rate - time.monotonic()
    else:
        return
    if delay > 0:
        time.sleep(delay)


def now_start() -> datetime:
    """The current minute, for traffic that a worker on the wall clock sees as live."""
    return datetime.now(UTC).replace(second=0, microsecond=0)
