"""An RM contact under ``rm_capacity`` is in the customer's latest decisions (``/customers``).

The RM's owner emits the decision on another partition; the customer's partition records it
when it asks for the capacity, and replaces it with what happened instead if refused.
"""

from __future__ import annotations

import json

from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed
from schemas.state import CustomerState, DecisionNote
from schemas.topics import TopicNames
from testkit.factories import daytime_zone, drop_off, profile
from testkit.rulesets import ruleset_from

TOPICS = TopicNames("kairos")
RULES = """
policy:
  rm_capacity: {per: rm, daily_limit: 1, when_full: next_channel}
rules:
  - {id: call, version: 1, event: drop_off, channels: [rm, sms], template: t}
"""
CONSENT = {"sms": True, "push": True, "rm": True}


def _processor() -> EventProcessor:
    return EventProcessor(TOPICS, ruleset_from(RULES), Metrics())


def _message(topic: str, value: bytes, key: bytes, offset: int = 0) -> InputMessage:
    return InputMessage(topic=topic, partition=0, offset=offset, key=key, value=value)


def _stored(processed: Processed[CustomerState], store: dict[bytes, CustomerState]) -> None:
    assert processed.state is not None
    store[processed.state[0]] = processed.state[1]


def _notes(store: dict[bytes, CustomerState], customer: bytes) -> list[DecisionNote]:
    return store[customer].recent_decisions


def _asked(
    processor: EventProcessor, store: dict[bytes, CustomerState], customer: str
) -> Processed[CustomerState]:
    """The customer's profile, then a drop-off whose RM contact goes to the RM's owner."""
    fields = profile(customer, rm_id="RM9", consent=CONSENT, timezone=daytime_zone())
    key = customer.encode()
    raw = json.dumps(fields).encode()
    _stored(processor.process(_message(TOPICS.profile, raw, key), store), store)
    raw = json.dumps(drop_off(customer)).encode()
    asked = processor.process(_message(TOPICS.drop_off, raw, key, offset=1), store)
    _stored(asked, store)
    return asked


def test_the_customers_state_records_the_rm_contact_it_asked_capacity_for() -> None:
    processor, store = _processor(), dict[bytes, CustomerState]()
    asked = _asked(processor, store, "C1")
    (request,) = [o for o in asked.outputs if o.topic == TOPICS.rm_requests]
    assert [o.topic for o in asked.outputs] == [TOPICS.rm_requests], "the RM's owner emits it"

    granted = processor.process_rm_request(_message(TOPICS.rm_requests, request.value, b"rm"), {})
    (published,) = [json.loads(o.value) for o in granted.outputs if o.topic == TOPICS.decisions]
    (note,) = _notes(store, b"C1")
    assert note.decision_id == published["decision_id"]
    assert (note.rule_id, note.outcome.value, note.channel) == ("call", "sent", "rm")


def test_a_refused_rm_contact_is_replaced_by_what_happened_instead() -> None:
    processor, store = _processor(), dict[bytes, CustomerState]()
    asked = _asked(processor, store, "C2")
    (request,) = [o for o in asked.outputs if o.topic == TOPICS.rm_requests]
    day_full = {b"rm:RM9|" + json.loads(request.value)["day"].encode(): b"1"}
    refused = processor.process_rm_request(
        _message(TOPICS.rm_requests, request.value, b"rm"), day_full
    )
    (reply,) = refused.outputs
    assert reply.topic == TOPICS.rm_replies and reply.key == b"C2"

    fallback = processor.process(_message(TOPICS.rm_replies, reply.value, b"C2", offset=2), store)
    _stored(fallback, store)
    (published,) = [json.loads(o.value) for o in fallback.outputs if o.topic == TOPICS.decisions]
    assert (published["outcome"], published["channel"]) == ("sent", "sms")
    notes = [(n.outcome.value, n.channel) for n in _notes(store, b"C2")]
    assert notes == [("sent", "sms")], "the refused RM contact is no longer shown as sent"
