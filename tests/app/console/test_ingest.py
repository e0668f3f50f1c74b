"""The follower decodes what the topics hold and skips, counting, what does not decode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from app.console.ingest import add_record, console_topics
from app.console.store import Batch
from schemas.deployment import LivePointer, PointerAction, RulesetBundle
from schemas.topics import TopicNames
from testkit import factories as make

TOPICS = TopicNames("t")


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0


def _json(value: dict[str, object]) -> bytes:
    return json.dumps(value).encode()


def test_records_are_decoded_and_the_undecodable_are_counted_not_raised() -> None:
    sent = make.decision("C1", "r")
    bundle = RulesetBundle(
        version="rs-1",
        files={"a.yaml": "rules: []\n"},
        deployed_at=datetime.now(UTC),
        deployed_by="ops",
    )
    pointer = LivePointer(
        version="rs-1", action=PointerAction.DEPLOY, at=bundle.deployed_at, by="o"
    )
    records = [
        FakeRecord(TOPICS.decisions, b"C1", _json(sent)),
        FakeRecord(TOPICS.conversions, b"C1", _json(make.conversion(sent))),
        FakeRecord(TOPICS.feedback, b"C1", _json(make.feedback(sent, "opened"))),
        FakeRecord(TOPICS.profile, b"C1", _json(make.profile("C1"))),
        FakeRecord(TOPICS.profile, b"C2", None),  # a tombstone: erased
        FakeRecord(TOPICS.rules, b"bundle:rs-1", bundle.model_dump_json().encode()),
        FakeRecord(TOPICS.rules, b"bundle:rs-0", None),  # a purged version
        FakeRecord(TOPICS.rules, b"live", pointer.model_dump_json().encode()),
        # skipped, each counted:
        FakeRecord(TOPICS.decisions, b"C1", b"not json"),
        FakeRecord(TOPICS.decisions, b"C1", _json({**sent, "outcome": "maybe"})),
        FakeRecord(TOPICS.conversions, b"C1", None),
        FakeRecord(TOPICS.feedback, b"C1", _json({**make.feedback(sent, "opened"), "status": 1})),
        FakeRecord(TOPICS.profile, b"C9", _json(make.profile("C1"))),  # key is not the id
        FakeRecord(TOPICS.profile, b"C1", _json(make.profile("C1", timezone="Mars/Base"))),
        FakeRecord(TOPICS.profile, None, None),
        FakeRecord(TOPICS.rules, b"live", b"{}"),
        FakeRecord(TOPICS.rules, b"something-else", b"{}"),
        FakeRecord(TOPICS.rules, b"bundle:rs-2", b"{}"),
        FakeRecord(TOPICS.decisions, b"\xff", b"\xff\xfe"),
    ]
    batch = Batch()
    for record in records:
        add_record(batch, record, TOPICS)
    assert (batch.records, batch.skipped) == (len(records), 11)
    assert [d.decision_id for d in batch.decisions] == [sent["decision_id"]]
    assert len(batch.conversions) == len(batch.feedback) == 1
    assert [(c, p is not None) for c, p in batch.profiles] == [("C1", True), ("C2", False)]
    assert [(v, b is not None) for v, b in batch.bundles] == [("rs-1", True), ("rs-0", False)]


def test_the_console_follows_the_topics_of_its_prefix() -> None:
    assert console_topics(TOPICS) == [
        "t.decisions",
        "t.conversions",
        "t.feedback",
        "t.customers.profile",
        "t.rules",
    ]
