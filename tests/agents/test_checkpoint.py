"""A batch decides each message on the state the batch's earlier messages left."""

from __future__ import annotations

import json

from agents.checkpoint import BatchView
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage
from schemas.topics import TopicNames
from testkit.factories import drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

TOPICS = TopicNames("kairos")


def _message(topic: str, value: dict[str, object], offset: int) -> InputMessage:
    raw = json.dumps(value).encode()
    return InputMessage(topic=topic, partition=0, offset=offset, key=b"C1", value=raw)


def test_staged_state_shadows_the_table_until_the_batch_is_stored() -> None:
    table = {b"C2": b"kept"}
    view = BatchView(table)
    processor = EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics())
    view.stage(processor.process(_message(TOPICS.profile, profile("C1"), 0), view))
    assert view.get(b"C1") == view[b"C1"] == view.staged[b"C1"]
    assert view.get(b"C2") == b"kept" and view.get(b"C3") is None
    assert b"C1" not in table, "nothing reaches the table before the acknowledgements"


def test_a_redelivery_inside_one_batch_is_still_recognised() -> None:
    view = BatchView({})
    processor = EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics())
    event = drop_off("C1", step=4)
    outputs = []
    for offset, (topic, value) in enumerate(
        [(TOPICS.profile, profile("C1")), (TOPICS.drop_off, event), (TOPICS.drop_off, event)]
    ):
        processed = processor.process(_message(topic, value, offset), view)
        view.stage(processed)
        outputs.append(len(processed.outputs))
    assert outputs == [0, 2, 0], "decision + action once; the duplicate produces nothing"
