from __future__ import annotations

import base64
import json

from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage
from schemas.actions import Channel
from schemas.state import RECENT_DECISIONS, CustomerState
from schemas.topics import TopicNames
from testkit.factories import drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

TOPICS = TopicNames("kairos")


def _processor() -> tuple[EventProcessor, Metrics]:
    metrics = Metrics()
    return EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), metrics), metrics


def _message(topic: str, value: bytes, key: bytes | None = b"C1", offset: int = 0) -> InputMessage:
    return InputMessage(
        topic=topic, partition=0, offset=offset, key=key, value=value, timestamp=None
    )


def test_profile_then_event_produces_a_decision_and_an_action() -> None:
    processor, metrics = _processor()
    store: dict[bytes, CustomerState] = {}
    first = processor.process(_message(TOPICS.profile, json.dumps(profile("C1")).encode()), store)
    assert first.outputs == [] and first.state is not None
    store[first.state[0]] = first.state[1]
    processed = processor.process(
        _message(TOPICS.drop_off, json.dumps(drop_off("C1", step=4)).encode()), store
    )
    assert [o.topic for o in processed.outputs] == [TOPICS.decisions, TOPICS.actions(Channel.PUSH)]
    assert all(o.key == b"C1" for o in processed.outputs)
    assert store[b"C1"] == first.state[1], "the processor never writes state itself"
    assert processed.state is not None and processed.state[0] == b"C1"
    assert processed.state[1].event_counts == {"drop_off": 1}
    sample = metrics.registry.get_sample_value
    assert (
        sample("kairos_actions_total", {"channel": "push", "rule_id": "loan-dropoff-digital-nudge"})
        == 1
    )


def test_an_event_on_the_wrong_topic_is_dead_lettered_with_its_bytes() -> None:
    processor, metrics = _processor()
    raw = json.dumps(drop_off("C1")).encode()
    processed = processor.process(_message(TOPICS.transaction, raw, offset=41), {})
    (output,) = processed.outputs
    assert output.topic == TOPICS.dead_letter
    letter = json.loads(output.value)
    assert letter["error_type"] == "wrong_topic" and letter["offset"] == 41
    assert base64.b64decode(letter["raw_base64"]) == raw
    assert (
        metrics.registry.get_sample_value("kairos_events_invalid_total", {"reason": "wrong_topic"})
        == 1
    )


def test_invalid_bytes_never_raise() -> None:
    processor, _ = _processor()
    for raw in (b"", b"\xff\xfe", b"[]", b"null", b'{"event_type": 5}'):
        (output,) = processor.process(_message(TOPICS.app_click, raw, key=None), {}).outputs
        assert output.topic == TOPICS.dead_letter


def test_the_stored_state_remembers_the_latest_decisions_for_the_customer_api() -> None:
    processor, _ = _processor()
    store: dict[bytes, CustomerState] = {}
    for offset, value in enumerate(
        [profile("C1"), *(drop_off("C1", step=4) for _ in range(RECENT_DECISIONS + 2))]
    ):
        topic = TOPICS.profile if offset == 0 else TOPICS.drop_off
        processed = processor.process(
            _message(topic, json.dumps(value).encode(), offset=offset), store
        )
        assert processed.state is not None
        store[processed.state[0]] = processed.state[1]
    recent = store[b"C1"].recent_decisions
    assert len(recent) == RECENT_DECISIONS, "bounded: state is serialised on every update"
    assert {d.rule_id for d in recent} == {"loan-dropoff-digital-nudge"}
    assert recent[-1].at >= recent[0].at


def test_every_state_change_reports_the_timers_left_for_the_scheduler() -> None:
    processor, _ = _processor()
    processed = processor.process(_message(TOPICS.profile, json.dumps(profile("C1")).encode()), {})
    assert processed.timers is not None
    assert processed.timers.customer_id == "C1"
    assert processed.timers.next_due is None and processed.timers.kinds == ()


def test_an_oversized_message_is_dead_lettered_unparsed_and_the_letter_stays_small() -> None:
    processor, metrics = _processor()
    huge = json.dumps({**drop_off("C1"), "padding": "p" * 1024 * 1024}).encode()
    processed = processor.process(_message(TOPICS.drop_off, huge), {})
    (output,) = processed.outputs
    letter = json.loads(output.value)
    assert output.topic == TOPICS.dead_letter and processed.state is None
    assert letter["error_type"] == "too_large" and "KAIROS_MAX_MESSAGE_BYTES" in letter["reason"]
    assert letter["raw_size"] == len(huge) and letter["raw_truncated"] is True
    assert len(output.value) < 512 * 1024, "under the broker's 1 MB message limit"
    assert (
        base64.b64decode(letter["raw_base64"])
        == huge[: len(base64.b64decode(letter["raw_base64"]))]
    )
    assert (
        metrics.registry.get_sample_value("kairos_events_invalid_total", {"reason": "too_large"})
        == 1
    )


def test_feedback_is_applied_counted_and_dead_lettered_when_malformed() -> None:
    processor, metrics = _processor()
    store: dict[bytes, CustomerState] = {}
    for topic, value in [
        (TOPICS.profile, profile("C1")),
        (TOPICS.drop_off, drop_off("C1", step=4)),
    ]:
        processed = processor.process(_message(topic, json.dumps(value).encode()), store)
        assert processed.state is not None
        store[processed.state[0]] = processed.state[1]
    [action] = [json.loads(o.value) for o in processed.outputs if "actions" in o.topic]
    report = {
        "feedback_id": "fb-1",
        "action_id": action["action_id"],
        "customer_id": "C1",
        "channel": action["channel"],
        "status": "opened",
        "occurred_at": action["created_at"],
    }
    raw = json.dumps(report).encode()
    applied = processor.process(_message(TOPICS.feedback, raw, offset=1), store)
    assert applied.state is not None and applied.outputs == []
    assert applied.state[1].contacts[-1].status == "opened"
    store[applied.state[0]] = applied.state[1]
    again = processor.process(_message(TOPICS.feedback, raw, offset=2), store)
    assert again.state is None, "a re-sent report changes nothing"
    sample = metrics.registry.get_sample_value
    labels = {"channel": action["channel"], "status": "opened"}
    assert sample("kairos_feedback_total", {**labels, "result": "applied"}) == 1
    assert sample("kairos_feedback_total", {**labels, "result": "duplicate"}) == 1
    assert sample("kairos_feedback_delay_seconds_count", labels) == 1
    keyless = processor.process(_message(TOPICS.feedback, raw, key=None, offset=3), store)
    assert json.loads(keyless.outputs[0].value)["error_type"] == "missing_key"
    bad = processor.process(
        _message(TOPICS.feedback, json.dumps({**report, "status": "failed"}).encode()), store
    )
    assert json.loads(bad.outputs[0].value)["error_type"] == "invalid_field"
