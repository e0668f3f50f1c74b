"""Every emitted action is timed against when it was due, by the path it left on.

The decision-latency histogram times only contacts decided on their event; a contact that
fired from a wait, left when quiet hours ended or went through the RM capacity queue was
invisible. These drive the processor as the Faust agents do — message in, outputs out,
``observe_latency`` once the broker has them — with a clock the test moves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed
from rules.engine import EngineOptions
from schemas.actions import Channel
from schemas.state import CustomerState
from schemas.timers import TimerTick
from schemas.topics import TopicNames
from testkit.factories import drop_off, profile
from testkit.rulesets import ruleset_from

TOPICS = TopicNames("kairos")
GRACE = timedelta(seconds=30)
#: A Monday, 10:00 in Madrid.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

WAIT_RULES = """
rules:
  - id: resume-nudge
    version: 1
    event: drop_off
    unless:
      within: 30m
      events:
        - {event: app_click, when: "event.screen == start.flow"}
    channels: [push]
    template: resume
    ttl: 48h
"""

QUIET_RULES = """
policy:
  quiet_hours:
    - {channels: [sms, push], start: "21:00", end: "08:00", action: defer}
rules:
  - {id: nudge, version: 1, event: drop_off, channels: [sms], template: t, ttl: 48h}
"""

RM_RULES = """
policy:
  rm_capacity: {per: rm, daily_limit: 1, when_full: next_day, timezone: Europe/Madrid}
rules:
  - {id: call, version: 1, event: drop_off, channels: [rm], template: t, ttl: 96h}
"""


class Clock:
    """The worker's clock, set by the test (the demo's is simulated too)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class Worker:
    """One processor and the stores the agents would give it."""

    def __init__(self, rules: str, clock: Clock) -> None:
        self.metrics = Metrics()
        self.processor = EventProcessor(
            TOPICS, ruleset_from(rules), self.metrics, clock, EngineOptions(timer_grace=GRACE)
        )
        self.states: dict[bytes, CustomerState] = {}
        self.counters: dict[bytes, bytes] = {}
        self.offset = 0

    def send(self, topic: str, value: Any, key: bytes = b"C1") -> Processed:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.offset += 1
        message = InputMessage(topic=topic, partition=0, offset=self.offset, key=key, value=raw)
        if topic == TOPICS.rm_requests:
            processed = self.processor.process_rm_request(message, self.counters)
            store = self.counters
        else:
            processed = self.processor.process(message, self.states)
            store = self.states
        if processed.state is not None:
            store[processed.state[0]] = processed.state[1]
        return processed

    def tick(self, due_at: datetime) -> Processed:
        return self.send(
            TOPICS.timers, TimerTick(customer_id="C1", due_at=due_at).model_dump(mode="json")
        )

    def lateness(self, channel: Channel, path: str) -> tuple[float | None, float | None]:
        """The histogram's (count, sum) for one channel and path."""
        labels = {"channel": channel.value, "path": path}
        sample = self.metrics.registry.get_sample_value
        return (
            sample("kairos_action_lateness_seconds_count", labels),
            sample("kairos_action_lateness_seconds_sum", labels),
        )


def _drop_off(at: datetime) -> dict[str, Any]:
    return drop_off("C1", occurred_at=at.isoformat(), step=4)


def _profile(**overrides: Any) -> dict[str, Any]:
    return profile("C1", updated_at="2026-01-01T00:00:00Z", **overrides)


def _topics(processed: Processed) -> list[str]:
    return [output.topic for output in processed.outputs]


def test_a_timer_fired_action_is_late_from_when_its_wait_fired() -> None:
    clock = Clock(T0)
    worker = Worker(WAIT_RULES, clock)
    worker.send(TOPICS.profile, _profile())
    worker.send(TOPICS.drop_off, _drop_off(T0))
    fires_at = T0 + timedelta(minutes=30) + GRACE  # the wait, then the grace for late exits
    clock.at = fires_at + timedelta(seconds=4)  # the tick comes 4 s after it was due
    fired = worker.tick(fires_at)
    assert TOPICS.actions(Channel.PUSH) in _topics(fired)
    clock.at += timedelta(seconds=2)  # the broker acknowledged it 2 s later
    worker.processor.observe_latency(fired)
    assert worker.lateness(Channel.PUSH, "timer") == (1, 6.0)
    assert worker.lateness(Channel.PUSH, "direct") == (0, 0.0)
    # the event-latency histogram still times only contacts decided on their event
    sample = worker.metrics.registry.get_sample_value
    assert sample("kairos_decision_latency_seconds_count", {"since": "occurred"}) is None


def test_a_deferred_action_is_late_from_when_quiet_hours_ended() -> None:
    night = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # 23:00 in Madrid: quiet
    clock = Clock(night)
    worker = Worker(QUIET_RULES, clock)
    worker.send(TOPICS.profile, _profile())
    deferred = worker.send(TOPICS.drop_off, _drop_off(night))
    assert not any("actions" in topic for topic in _topics(deferred))
    worker.processor.observe_latency(deferred)
    ends = datetime(2026, 11, 3, 7, 0, tzinfo=UTC)  # 08:00 in Madrid
    clock.at = ends + timedelta(seconds=90)  # a worker catching up: 90 s late
    sent = worker.tick(ends)
    assert TOPICS.actions(Channel.SMS) in _topics(sent)
    worker.processor.observe_latency(sent)
    assert worker.lateness(Channel.SMS, "deferred") == (1, 90.0)
    assert worker.lateness(Channel.SMS, "timer") == (0, 0.0)


def test_an_rm_action_is_late_from_when_it_was_due_through_the_rm_queue() -> None:
    clock = Clock(T0)
    worker = Worker(RM_RULES, clock)
    for customer in (b"C1", b"C2"):
        worker.send(
            TOPICS.profile,
            {**_profile(), "customer_id": customer.decode(), "rm_id": "RM7",
             "consent": {"sms": True, "push": True, "rm": True}},
            key=customer,
        )  # fmt: skip
    first = worker.send(TOPICS.drop_off, _drop_off(T0))
    assert _topics(first) == [TOPICS.rm_requests], "the RM's owner decides, not the customer's"
    (request,) = first.outputs
    clock.at = T0 + timedelta(seconds=3)  # three seconds on the rm_requests topic
    granted = worker.send(TOPICS.rm_requests, request.value, key=request.key)
    assert TOPICS.actions(Channel.RM) in _topics(granted)
    worker.processor.observe_latency(granted)
    assert worker.lateness(Channel.RM, "rm_queue") == (1, 3.0)

    # RM7's day is now full: C2's call waits for the next working day's opening
    clock.at = T0 + timedelta(minutes=5)
    second = worker.send(TOPICS.drop_off, {**_drop_off(clock.at), "customer_id": "C2"}, b"C2")
    (request,) = second.outputs
    refused = worker.send(TOPICS.rm_requests, request.value, key=request.key)
    assert _topics(refused) == [TOPICS.rm_replies]
    (reply,) = refused.outputs
    worker.send(TOPICS.rm_replies, reply.value, key=reply.key)
    opens = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)  # Tuesday 09:00 in Madrid
    clock.at = opens + timedelta(seconds=1)
    retried = worker.send(
        TOPICS.timers, TimerTick(customer_id="C2", due_at=opens).model_dump(mode="json"), b"C2"
    )
    (request,) = [o for o in retried.outputs if o.topic == TOPICS.rm_requests]
    clock.at = opens + timedelta(seconds=5)
    granted = worker.send(TOPICS.rm_requests, request.value, key=request.key)
    assert TOPICS.actions(Channel.RM) in _topics(granted)
    worker.processor.observe_latency(granted)
    assert worker.lateness(Channel.RM, "rm_queue") == (2, 3.0 + 5.0)  # late from the opening


def test_a_direct_action_is_late_from_its_event() -> None:
    clock = Clock(T0 + timedelta(seconds=2))  # decided 2 s after the customer dropped off
    worker = Worker(QUIET_RULES, clock)
    worker.send(TOPICS.profile, _profile())
    sent = worker.send(TOPICS.drop_off, _drop_off(T0))
    clock.at += timedelta(milliseconds=500)
    worker.processor.observe_latency(sent)
    assert worker.lateness(Channel.SMS, "direct") == (1, 2.5)


def test_every_channel_and_path_is_exported_from_the_start() -> None:
    sample = Metrics().registry.get_sample_value
    for channel in Channel:
        for path in ("direct", "timer", "deferred", "rm_queue"):
            labels = {"channel": channel.value, "path": path}
            assert sample("kairos_action_lateness_seconds_count", labels) == 0
