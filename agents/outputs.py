"""What a verdict becomes: counted in the metrics, encoded, addressed to its topic.

Every decision, action, conversion and RM request of a verdict, every RM settlement and
every dead letter leaves the worker through :class:`OutputEncoder`, so each is counted
exactly once, under bounded labels, where it is encoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from agents.clock import Clock
from agents.decode import InputMessage
from agents.metrics import Metrics
from rules.engine import ActionPath, RmSettlement, Verdict
from schemas.capacity import RmRequest
from schemas.codec import encode
from schemas.dead_letter import MAX_RAW_BYTES, DeadLetter
from schemas.decisions import Outcome, Reason
from schemas.errors import InvalidEventError
from schemas.state import CustomerState
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """One message to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class TimerSummary:
    """A customer's pending timers after a message, for the scheduler and the gauges."""

    customer_id: str
    #: When the earliest should fire; None when nothing is pending any more.
    next_due: datetime | None
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class DueAction:
    """An emitted action's channel and path, and when it was due: for its lateness."""

    channel: str
    path: ActionPath
    due_at: datetime


#: What a table keeps per key: a decoded customer state, or an RM's count as bytes.
S = TypeVar("S")


@dataclass
class Processed(Generic[S]):
    """What one message produced: messages to emit, latency origins, the timers left."""

    outputs: list[Output] = field(default_factory=list)
    actions_from: list[tuple[datetime, float | None]] = field(default_factory=list)
    #: Every action emitted, timed once the broker has it (``EventProcessor.observe_latency``).
    due_actions: list[DueAction] = field(default_factory=list)
    timers: TimerSummary | None = None
    #: ``(key, new value)`` for the state layer, which stores it only once every output is
    #: acknowledged, so a crash in between re-processes the message (same ids) instead of
    #: losing its contacts.
    state: tuple[bytes, S] | None = None


class OutputEncoder:
    """Counts and encodes what the engine concluded, for one worker's topics."""

    def __init__(self, topics: TopicNames, metrics: Metrics, clock: Clock) -> None:
        self.topics = topics
        self.metrics = metrics
        self.clock = clock

    def verdict(
        self,
        verdict: Verdict,
        key: bytes,
        origin: tuple[str, datetime, float | None] | None = None,
        changed: bool = True,
    ) -> Processed[CustomerState]:
        """Count, encode and collect what ``verdict`` says; the state to store if ``changed``.

        ``origin`` is the triggering event's id, time and broker timestamp, for the latency
        of the actions it caused. The timer summary is reported even when nothing changed:
        a tick that came early must put the customer back on the scheduler, or the timer
        would wait for a restart.
        """
        metrics, topics = self.metrics, self.topics
        processed = Processed[CustomerState]()
        metrics.rule_evaluations.count(verdict.evaluated)
        for failure in verdict.failures:
            # The error text stays in the decision record: it can quote an event's values.
            if failure.kind == "feature":
                metrics.feature_errors.labels(failure.rule_id).inc()
                log.warning("Feature %s raised while updating; kept its value", failure.rule_id)
            else:
                metrics.rule_errors.labels(failure.rule_id).inc()
                log.warning("Rule %s raised; its decision is suppressed", failure.rule_id)
        for change in verdict.timers:
            metrics.timers.labels(change.rule_id, change.change).inc()
        for decision in verdict.decisions:
            if decision.reason_code is not Reason.RULE_ERROR:
                metrics.rule_fires.labels(decision.rule_id).inc()
            if decision.outcome is Outcome.SUPPRESSED:
                metrics.suppressions.labels(decision.reason_code.value, decision.rule_id).inc()
            elif decision.outcome is Outcome.HELD_OUT:
                metrics.held_out.labels(decision.rule_id).inc()
            elif decision.outcome is Outcome.DEFERRED:
                metrics.deferrals.labels(decision.reason_code.value, decision.rule_id).inc()
            processed.outputs.append(Output(topics.decisions, key, encode(decision)))
        for request in verdict.rm_requests:
            capacity_key = request.capacity_key.encode()
            processed.outputs.append(Output(topics.rm_requests, capacity_key, encode(request)))
        for conversion in verdict.conversions:
            metrics.conversions.labels(conversion.rule_id, conversion.group).inc()
            processed.outputs.append(Output(topics.conversions, key, encode(conversion)))
        for action in verdict.actions:
            metrics.actions.labels(action.channel.value, action.rule_id).inc()
            processed.outputs.append(Output(topics.actions(action.channel), key, encode(action)))
            if origin is not None and action.trigger_event_ids == [origin[0]]:
                processed.actions_from.append(origin[1:])  # timer-fired ones waited on purpose
            timing = verdict.timings.get(action.action_id)
            if timing is not None:
                processed.due_actions.append(
                    DueAction(action.channel.value, timing.path, timing.due_at)
                )
        if changed:
            # An RM contact asked of its RM's capacity is published by the RM's owner, if
            # granted; the customer's state records it now (see ``rules.engine.rm_capacity``).
            asked = [request.decision for request in verdict.rm_requests]
            remembered = verdict.state.with_decisions([*verdict.decisions, *asked])
            processed.state = (key, remembered)
        processed.timers = TimerSummary(
            customer_id=verdict.state.customer_id,
            next_due=verdict.wake_up_at,
            kinds=tuple(timer.kind for timer in verdict.state.timers),
        )
        return processed

    def rm_settlement(
        self, request: RmRequest, settled: RmSettlement, counter_key: bytes
    ) -> Processed[bytes]:
        """A granted RM contact's decision and action, or the refusal to the customer."""
        customer = request.action.customer_id.encode()
        if settled.reply is not None:
            self.metrics.rm_capacity.labels("full").inc()
            return Processed[bytes](
                outputs=[Output(self.topics.rm_replies, customer, encode(settled.reply))]
            )
        action = request.action
        self.metrics.rm_capacity.labels("granted").inc()
        self.metrics.actions.labels(action.channel.value, action.rule_id).inc()
        self.metrics.rule_fires.labels(request.decision.rule_id).inc()
        # an older worker's request carries no due time: due when it was decided, then
        due_at = request.due_at or request.decision.decided_at
        return Processed[bytes](
            outputs=[
                Output(self.topics.decisions, customer, encode(request.decision)),
                Output(self.topics.actions(action.channel), customer, encode(action)),
            ],
            due_actions=[DueAction(action.channel.value, "rm_queue", due_at)],
            state=(counter_key, str(settled.used).encode()),
        )

    def dead_letter(self, message: InputMessage, error: InvalidEventError) -> Processed[Any]:
        """The message, its reason and its bytes, for the dead-letter topic."""
        self.metrics.events_invalid.labels(error.error_type).inc()
        raw_base64, preview = DeadLetter.encode_raw(message.value)
        record = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode("utf-8", errors="replace") if message.key is not None else None,
            error_type=error.error_type,
            reason=error.reason,
            raw_base64=raw_base64,
            raw_size=len(message.value),
            raw_truncated=len(message.value) > MAX_RAW_BYTES,
            raw_preview=preview,
            received_at=self.clock(),
        )
        log.info(  # the reason stays in the record: it may quote a key or a value
            "Dead-lettered %s[%d]@%d (%s)",
            message.topic,
            message.partition,
            message.offset,
            error.error_type,
            # fields of their own in JSON logs (KAIROS_LOG_FORMAT=json), to filter on
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error_type": error.error_type,
            },
        )
        return Processed[Any](
            outputs=[Output(self.topics.dead_letter, message.key or b"", encode(record))]
        )
