"""From one raw input message to a state update and the messages to emit.

Deliberately free of Faust: it takes bytes and a key-value state store and returns bytes,
so the Faust agent and the tests run exactly this code. Its three steps are the drivers'
only work around the engine: decode the message (``agents.decode``), hand the input to
the engine's one dispatcher (``rules.engine.dispatcher``, which offline replays call too)
with the customer's stored state, and count and encode the verdict (``agents.outputs``).

Poison input never raises out of here — it becomes a dead-letter record: invalid input, a
state that cannot be read, an engine that raises on it, or outputs too large to produce. A
message that raised would otherwise stop the agent, and the restarted worker would read
the same message again: one event could halt a partition for good.

Logs name topics, partitions, offsets and error types only: event values, keys and
exception messages can carry customer ids, and those go to the dead-letter record alone.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from agents.clock import Clock, utc_now
from agents.decode import InputDecoder, InputMessage
from agents.metrics import Metrics
from agents.outputs import Output, OutputEncoder, Processed, TimerSummary
from rules.engine import EngineOptions, counter_key, dispatch, settle_request
from rules.ruleset import Ruleset
from schemas.capacity import RmRequest
from schemas.errors import InvalidEventError, StateCorruptError
from schemas.events import EventBase
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.state import CustomerState
from schemas.timers import TimerTick
from schemas.topics import TopicNames

__all__ = ["EventProcessor", "InputMessage", "Output", "Processed", "StateStore", "TimerSummary"]

_V = TypeVar("_V", covariant=True)


class StateStore(Protocol[_V]):
    """Where the processor reads a key's current value (``agents.checkpoint``, or a dict).

    It reads only: what a message changes comes back in :attr:`Processed.state`, for the
    caller to keep and store once the outputs are acknowledged.
    """

    def get(self, key: bytes, /) -> _V | None: ...


#: The largest output a message may produce. The producer refuses records over the broker's
#: 1 MB limit; a refused output stops the agent, and the restart decides the same message
#: again. Refusing the *input* to the dead-letter topic instead keeps the partition moving.
MAX_OUTPUT_BYTES = 900 * 1024


class EventProcessor:
    """Decodes, decides, encodes. One instance per worker."""

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
        self.decoder = InputDecoder(topics)
        self.encoder = OutputEncoder(topics, metrics, clock)

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

    def process(
        self, message: InputMessage, store: StateStore[CustomerState]
    ) -> Processed[CustomerState]:
        """Decide one message; never raises — what cannot be decided is dead-lettered."""
        if len(message.value) > self.max_message_bytes:
            return self.encoder.dead_letter(message, self._too_large(message))
        try:
            processed = self._decide(message, store)
        except InvalidEventError as exc:
            return self.encoder.dead_letter(message, exc)
        except StateCorruptError as exc:
            return self.encoder.dead_letter(message, _failed(message, exc, "state_unreadable"))
        except Exception as exc:  # an engine bug on this input: isolate it, decide the next
            return self.encoder.dead_letter(message, _failed(message, exc, "processing_failed"))
        largest = max((len(output.value) for output in processed.outputs), default=0)
        if largest > MAX_OUTPUT_BYTES:
            why = InvalidEventError(
                f"deciding it produced a {largest:,}-byte output, over the {MAX_OUTPUT_BYTES:,}"
                "-byte limit the broker accepts; check the rule's parameters",
                message.value,
                error_type="output_too_large",
            )
            return self.encoder.dead_letter(message, why)
        return processed

    def _decide(
        self, message: InputMessage, store: StateStore[CustomerState]
    ) -> Processed[CustomerState]:
        item = self.decoder.decode(message)
        if isinstance(item, EventBase):
            self.metrics.consumed_of(item.event_type).inc()
        elif isinstance(item, CustomerProfile):
            self.metrics.consumed_of("profile").inc()
        key = item.customer_id.encode()
        state = store.get(key)  # decoded by the state layer; a corrupt record raises here
        verdict = dispatch(item, state, self.ruleset, self.clock(), self.options)
        if isinstance(item, Feedback):
            result = verdict.feedback if verdict is not None else "unknown_action"
            self.metrics.feedback.labels(item.channel.value, item.status.value, result).inc()
            if verdict is not None and verdict.feedback_after_s is not None:
                delay = self.metrics.feedback_delay.labels(item.channel.value, item.status.value)
                delay.observe(verdict.feedback_after_s)
            if verdict is None or result == "duplicate":
                return Processed[CustomerState]()
        if verdict is None:
            return Processed[CustomerState]()
        if isinstance(item, EventBase):
            if verdict.duplicate:
                self.metrics.events_duplicate.labels(item.event_type).inc()
                return Processed[CustomerState]()
            if verdict.late:
                self.metrics.events_late.labels(item.event_type).inc()
            origin = (item.event_id, item.occurred_at, message.timestamp)
            return self.encoder.verdict(verdict, key, origin)
        # A tick that fired nothing changed nothing: no state write, no changelog record.
        changed = not isinstance(item, TimerTick) or bool(verdict.timers)
        return self.encoder.verdict(verdict, key, changed=changed)

    def process_rm_request(
        self, message: InputMessage, counters: StateStore[bytes]
    ) -> Processed[bytes]:
        """Grant an RM contact within the RM's daily capacity, or refuse it to the customer.

        Runs on the partition that owns the RM (requests are keyed by RM), so the count of
        the day is read and written by one worker only. Never raises, like :meth:`process`.
        """
        try:
            request = RmRequest.model_validate_json(message.value)
            key = counter_key(request).encode()
            settled = settle_request(request, int(counters.get(key) or b"0"))
            return self.encoder.rm_settlement(request, settled, key)
        except Exception as exc:
            return self.encoder.dead_letter(message, _failed(message, exc, "processing_failed"))

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

    def observe_latency(self, processed: Processed[Any]) -> None:
        """Record event→action latency, and every action's lateness, once the broker has them.

        Latency covers the actions decided on their event only (a timer-fired one waited on
        purpose); lateness covers every action, against when it was due, so contacts that
        leave from a timer, a deferral or the RM queue are measured too.
        """
        now = self.clock()
        lateness, latency = self.metrics.action_lateness, self.metrics.decision_latency
        for due in processed.due_actions:
            lateness.observe((due.channel, due.path), max((now - due.due_at).total_seconds(), 0.0))
        if processed.actions_from:
            now_s = now.timestamp()
            for occurred_at, ingested in processed.actions_from:
                latency.observe(_OCCURRED, max(now_s - occurred_at.timestamp(), 0.0))
                if ingested is not None:
                    latency.observe(_INGESTED, max(now_s - ingested, 0.0))


#: ``kairos_decision_latency_seconds``'s two series: since the event occurred, since ingest.
_OCCURRED, _INGESTED = ("occurred",), ("ingested",)


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
