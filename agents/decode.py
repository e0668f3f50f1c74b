"""From a consumed Kafka message to the typed input the engine's dispatcher takes.

Each message is validated once, from bytes, into the model its topic carries; anything
that is not what its topic promises raises :class:`~schemas.errors.InvalidEventError`
with a reason, for the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from rules.engine import CustomerInput
from schemas.capacity import RmReply
from schemas.codec import decode_event, decode_feedback, decode_profile
from schemas.errors import InvalidEventError
from schemas.events import EVENT_TYPES
from schemas.timers import TimerTick
from schemas.topics import TopicNames


@dataclass(frozen=True)
class InputMessage:
    """The parts of a consumed Kafka message the processor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float | None = None  # broker/producer timestamp, seconds


class InputDecoder:
    """Knows which model each input topic carries."""

    def __init__(self, topics: TopicNames) -> None:
        self.topics = topics
        self._event_type_by_topic = {topics.for_event_type(t): t for t in EVENT_TYPES}

    def decode(self, message: InputMessage) -> CustomerInput:
        """The message as a profile, an event, a timer tick or an RM refusal."""
        if message.topic == self.topics.timers:
            try:
                return TimerTick.model_validate_json(message.value)
            except ValidationError as exc:
                raise InvalidEventError(str(exc), message.value, error_type="invalid_tick") from exc
        if message.topic == self.topics.rm_replies:
            return RmReply.model_validate_json(message.value)  # our own record: trusted
        if message.key is None:  # before parsing: nothing keyless may reach a partition's state
            raise InvalidEventError(
                "message has no key; producers must key every message by customer_id, or it "
                "lands on an arbitrary partition, away from the customer's state",
                message.value,
                error_type="missing_key",
            )
        if message.topic == self.topics.profile:
            return decode_profile(message.value, message.key)
        if message.topic == self.topics.feedback:
            return decode_feedback(message.value, message.key)
        event = decode_event(message.value, message.key)
        expected = self._event_type_by_topic.get(message.topic)
        if expected is not None and expected != event.event_type:
            raise InvalidEventError(
                f"event_type {event.event_type!r} does not belong on topic {message.topic!r} "
                f"(expected {expected!r})",
                message.value,
                error_type="wrong_topic",
            )
        return event
