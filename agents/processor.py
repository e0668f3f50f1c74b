"""From one raw input message to a state update and the messages to emit.

Deliberately free of Faust: it takes bytes and a key-value state store and returns bytes,
so the Faust agent, the tests and an offline replay all run exactly this code. Poison
input never raises out of here — it becomes a dead-letter record: invalid input, a state
that cannot be read, an engine that raises on it, or outputs too large to produce. A
message that raised would otherwise stop the agent, and the restarted worker would read
the same message again: one event could halt a partition for good.

Logs name topics, partitions, offsets and error types only: event values, keys and
exception messages can carry customer ids, and those go to the dead-letter record alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from agents.clock import Clock, utc_now
from agents.metrics import Metrics
from rules.capacity import admits, counter_key, refusal
from rules.engine import (
    EngineOptions,
    Verdict,
    decide,
    fire_due_timers,
    handle_rm_capacity_full,
    update_profile,
)
from rules.ruleset import Ruleset
from schemas.capacity import RmReply, RmRequest
from schemas.codec import decode_event, decode_profile, decode_state, encode, encode_state
from schemas.dead_letter import MAX_RAW_BYTES, DeadLetter
from schemas.decisions import Outcome, Reason
from schemas.errors import InvalidEventError, StateCorruptError
from schemas.events import EVENT_TYPES
from schemas.timers import TimerTick
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

StateStore = Mapping[bytes, bytes]

#: The largest output a message may produce. The producer refuses records over the broker's
#: 1 MB limit; a refused output stops the agent, and the restart decides the same message
#: again. Refusing the *input* to the dead-letter topic instead keeps the partition moving.
MAX_OUTPUT_BYTES = 900 * 1024


@dataclass(frozen=True)
class Output:
    """One message to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class InputMessage:
    """The parts of a consumed Kafka message the processor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float | None = None  # broker/producer timestamp, seconds


@dataclass(frozen=True)
class TimerSummary:
    """A customer's pending timers after a message, for the scheduler and the gauges."""

    customer_id: str
    #: When the earliest should fire; None when nothing is pending any more.
    next_due: datetime | None
    kinds: tuple[str, ...]


@dataclass
class Processed:
    """What one message produced: messages to emit, latency origins, the timers left."""

    outputs: list[Output] = field(default_factory=list)
    actions_from: list[tuple[datetime, float | None]] = field(default_factory=list)
    timers: TimerSummary | None = None
    #: ``(key, state bytes)`` to store — only once every output is acknowledged, so a crash
    #: in between re-processes the message (same ids) instead of losing its contacts.
    state: tuple[bytes, bytes] | None = None


class EventProcessor:
    """Decodes, decides, updates state, encodes. One instance per worker."""

    def __init__(
        self,
        topics: TopicNames,
        ruleset: Ruleset,
        metrics: Metrics,
        clock: Clock = utc_now,
        options: EngineOptions | None = None,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        self.topics = topics
        self.max_message_bytes = max_message_bytes
        self.ruleset = ruleset
        self.metrics = metrics
        self.clock = clock
        self.options = options or EngineOptions()
        self._event_type_by_topic = {topics.for_event_type(t): t for t in EVENT_TYPES}

    def swap_ruleset(self, ruleset: Ruleset) -> None:
        """Switch rules between two events: the reference swap is atomic."""
        self.ruleset = ruleset
        self.metrics.ruleset.info({"version": ruleset.version})
        self.metrics.rules_loaded.set(sum(1 for rule in ruleset.rules if rule.spec.enabled))
        for rule in ruleset.rules:
            if rule.spec.enabled:
                self.metrics.declare_rule(
                    rule.id,
                    [channel.value for channel in rule.channels],
                    holdout=rule.spec.holdout > 0,
                    goal=rule.spec.goal is not None,
                )

    def process(self, message: InputMessage, store: StateStore) -> Processed:
        """Decide one message; never raises — what cannot be decided is dead-lettered."""
        if len(message.value) > self.max_message_bytes:
            return self._dead_letter(message, self._too_large(message))
        try:
            processed = self._dispatch(message, store)
        except InvalidEventError as exc:
            return self._dead_letter(message, exc)
        except StateCorruptError as exc:
            return self._dead_letter(message, self._failed(message, exc, "state_unreadable"))
        except Exception as exc:  # an engine bug on this input: isolate it, decide the next
            return self._dead_letter(message, self._failed(message, exc, "processing_failed"))
        largest = max((len(output.value) for output in processed.outputs), default=0)
        if largest > MAX_OUTPUT_BYTES:
            why = InvalidEventError(
                f"deciding it produced a {largest:,}-byte output, over the {MAX_OUTPUT_BYTES:,}"
                "-byte limit the broker accepts; check the rule's parameters",
                message.value,
                error_type="output_too_large",
            )
            return self._dead_letter(message, why)
        return processed

    def _dispatch(self, message: InputMessage, store: StateStore) -> Processed:
        if message.topic == self.topics.timers:
            return self._process_tick(message, store)
        if message.topic == self.topics.rm_replies:
            return self._process_rm_reply(message, store)
        if message.key is None:  # before parsing: nothing keyless may reach a partition's state
            raise InvalidEventError(
                "message has no key; producers must key every message by customer_id, or it "
                "lands on an arbitrary partition, away from the customer's state",
                message.value,
                error_type="missing_key",
            )
        if message.topic == self.topics.profile:
            return self._process_profile(message, store)
        return self._process_event(message, store)

    @staticmethod
    def _failed(message: InputMessage, exc: Exception, error_type: str) -> InvalidEventError:
        """An input that made deciding raise, as a dead letter with the error type and text."""
        text = str(exc)
        if message.key:  # the record carries the key already: do not repeat the id in prose
            text = text.replace(message.key.decode("utf-8", errors="replace"), "<key>")
        return InvalidEventError(
            f"deciding it raised {type(exc).__name__}: {text}"[:1000],
            message.value,
            error_type=error_type,
        )

    def _process_profile(self, message: InputMessage, store: StateStore) -> Processed:
        profile = decode_profile(message.value, message.key)
        self.metrics.events_consumed.labels("profile").inc()
        key = profile.customer_id.encode()
        current = store.get(key)
        verdict = update_profile(
            decode_state(current) if current else None,
            profile,
            self.ruleset,
            self.clock(),
            self.options,
        )
        return self._emit(verdict, key, None, None)

    def _process_event(self, message: InputMessage, store: StateStore) -> Processed:
        event = decode_event(message.value, message.key)
        expected = self._event_type_by_topic.get(message.topic)
        if expected is not None and expected != event.event_type:
            raise InvalidEventError(
                f"event_type {event.event_type!r} does not belong on topic {message.topic!r} "
                f"(expected {expected!r})",
                message.value,
                error_type="wrong_topic",
            )
        self.metrics.events_consumed.labels(event.event_type).inc()
        key = event.customer_id.encode()
        current = store.get(key)
        verdict = decide(
            event,
            decode_state(current) if current else None,
            self.ruleset,
            self.clock(),
            self.options,
        )
        if verdict.duplicate:
            self.metrics.events_duplicate.labels(event.event_type).inc()
            return Processed()
        if verdict.late:
            self.metrics.events_late.labels(event.event_type).inc()
        return self._emit(verdict, key, event.event_id, (event.occurred_at, message.timestamp))

    def _process_tick(self, message: InputMessage, store: StateStore) -> Processed:
        try:
            tick = TimerTick.model_validate_json(message.value)
        except ValidationError as exc:
            raise InvalidEventError(str(exc), message.value, error_type="invalid_tick") from exc
        key = tick.customer_id.encode()
        current = store.get(key)
        if current is None:
            return Processed()
        verdict = fire_due_timers(decode_state(current), self.ruleset, self.clock(), self.options)
        return self._emit(verdict, key, None, None, changed=bool(verdict.timers))

    def _process_rm_reply(self, message: InputMessage, store: StateStore) -> Processed:
        reply = RmReply.model_validate_json(message.value)  # our own record: trusted
        key = reply.customer_id.encode()
        current = store.get(key)
        if current is None:
            return Processed()
        verdict = handle_rm_capacity_full(
            decode_state(current), reply, self.ruleset, self.clock(), self.options
        )
        return self._emit(verdict, key, None, None)

    def process_rm_request(self, message: InputMessage, counters: StateStore) -> Processed:
        """Grant an RM contact within the RM's daily capacity, or refuse it to the customer.

        Runs on the partition that owns the RM (requests are keyed by RM), so the count of
        the day is read and written by one worker only. Never raises, like :meth:`process`.
        """
        try:
            return self._reserve_rm_capacity(message, counters)
        except Exception as exc:
            return self._dead_letter(message, self._failed(message, exc, "processing_failed"))

    def _reserve_rm_capacity(self, message: InputMessage, counters: StateStore) -> Processed:
        request = RmRequest.model_validate_json(message.value)
        key = counter_key(request).encode()
        used = int(counters.get(key) or b"0")
        customer = request.action.customer_id.encode()
        if admits(request, used):
            self.metrics.rm_capacity.labels("granted").inc()
            self.metrics.actions.labels(request.action.channel.value, request.action.rule_id).inc()
            self.metrics.rule_fires.labels(request.decision.rule_id).inc()
            return Processed(
                outputs=[
                    Output(self.topics.decisions, customer, encode(request.decision)),
                    Output(
                        self.topics.actions(request.action.channel),
                        customer,
                        encode(request.action),
                    ),
                ],
                state=(key, str(used + 1).encode()),
            )
        self.metrics.rm_capacity.labels("full").inc()
        return Processed(
            outputs=[Output(self.topics.rm_replies, customer, encode(refusal(request)))]
        )

    def _emit(
        self,
        verdict: Verdict,
        key: bytes,
        event_id: str | None,
        origin: tuple[datetime, float | None] | None,
        changed: bool = True,
    ) -> Processed:
        """Count, encode and collect what ``verdict`` says; the state to store if ``changed``.

        The timer summary is reported even when nothing changed: a tick that came early
        must put the customer back on the scheduler, or the timer would wait for a restart.
        """
        processed = Processed()
        for rule_id in verdict.evaluated:
            self.metrics.rule_evaluations.labels(rule_id).inc()
        for failure in verdict.failures:
            # The error text stays in the decision record: it can quote an event's values.
            if failure.kind == "feature":
                self.metrics.feature_errors.labels(failure.rule_id).inc()
                log.warning("Feature %s raised while updating; kept its value", failure.rule_id)
            else:
                self.metrics.rule_errors.labels(failure.rule_id).inc()
                log.warning("Rule %s raised; its decision is suppressed", failure.rule_id)
        for change in verdict.timers:
            self.metrics.timers.labels(change.rule_id, change.change).inc()
        for decision in verdict.decisions:
            if decision.reason_code is not Reason.RULE_ERROR:
                self.metrics.rule_fires.labels(decision.rule_id).inc()
            if decision.outcome is Outcome.SUPPRESSED:
                self.metrics.suppressions.labels(decision.reason_code.value, decision.rule_id).inc()
            elif decision.outcome is Outcome.HELD_OUT:
                self.metrics.held_out.labels(decision.rule_id).inc()
            elif decision.outcome is Outcome.DEFERRED:
                self.metrics.deferrals.labels(decision.reason_code.value, decision.rule_id).inc()
            processed.outputs.append(Output(self.topics.decisions, key, encode(decision)))
        for request in verdict.rm_requests:
            capacity_key = request.capacity_key.encode()
            processed.outputs.append(Output(self.topics.rm_requests, capacity_key, encode(request)))
        for conversion in verdict.conversions:
            self.metrics.conversions.labels(conversion.rule_id, conversion.group).inc()
            processed.outputs.append(Output(self.topics.conversions, key, encode(conversion)))
        for action in verdict.actions:
            self.metrics.actions.labels(action.channel.value, action.rule_id).inc()
            processed.outputs.append(
                Output(self.topics.actions(action.channel), key, encode(action))
            )
            if origin is not None and action.trigger_event_ids == [event_id]:
                processed.actions_from.append(origin)  # timer-fired actions waited on purpose
        if changed:
            processed.state = (key, encode_state(verdict.state.with_decisions(verdict.decisions)))
        processed.timers = TimerSummary(
            customer_id=verdict.state.customer_id,
            next_due=verdict.wake_up_at,
            kinds=tuple(timer.kind for timer in verdict.state.timers),
        )
        return processed

    def _too_large(self, message: InputMessage) -> InvalidEventError:
        """Why a message over the size limit is refused, before it is even parsed.

        A bank event is a few hundred bytes, and a pending timer keeps its triggering event
        in the state: an unbounded event would make an unbounded state record and changelog
        message, past the broker's limit.
        """
        return InvalidEventError(
            f"message is {len(message.value):,} bytes, over the {self.max_message_bytes:,}-byte "
            "limit for input messages (KAIROS_MAX_MESSAGE_BYTES); check the producer",
            message.value,
            error_type="too_large",
        )

    def _dead_letter(self, message: InputMessage, error: InvalidEventError) -> Processed:
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
        )
        return Processed(
            outputs=[Output(self.topics.dead_letter, message.key or b"", encode(record))]
        )

    def observe_latency(self, processed: Processed) -> None:
        """Record event→action latency at the moment the actions are handed to the producer."""
        now = self.clock()
        for occurred_at, ingested in processed.actions_from:
            self.metrics.decision_latency.labels("occurred").observe(
                max((now - occurred_at).total_seconds(), 0.0)
            )
            if ingested is not None:
                self.metrics.decision_latency.labels("ingested").observe(
                    max(now.timestamp() - ingested, 0.0)
                )
