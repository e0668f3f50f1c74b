"""End to end on the real broker: events in, actions, decisions and dead letters out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, drop_off, profile, transaction
from testkit.rulesets import IMMEDIATE_RULES

pytestmark = pytest.mark.integration

Records = list[tuple[str, dict[str, Any]]]


def _on(records: Records, topic: str) -> list[dict[str, Any]]:
    return [value for name, value in records if name == topic]


def test_events_become_actions_on_all_three_channels(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    k.start_worker()
    t = k.topics
    consent_all = {"sms": True, "push": True, "rm": True}
    k.send_profiles(
        profile("C-RM", tier="private", rm_id="RM001", consent=consent_all),
        profile("C-PUSH"),
        profile("C-SMS", push_enabled=False),
        profile("C-OUT", marketing_opt_out=True),
    )
    rm_event = drop_off("C-RM", step=4)
    push_event = drop_off("C-PUSH", step=3)
    for event in (rm_event, push_event, drop_off("C-SMS", step=5), drop_off("C-OUT", step=3)):
        k.send(t.drop_off, event)

    action_topics = [t.actions(c) for c in Channel]
    records = k.collect(
        [*action_topics, t.decisions],
        until=lambda r: len(_on(r, t.decisions)) >= 4,
    )

    rm = _on(records, t.actions(Channel.RM))
    push = _on(records, t.actions(Channel.PUSH))
    sms = _on(records, t.actions(Channel.SMS))
    assert [a["customer_id"] for a in rm] == ["C-RM"]
    assert [a["customer_id"] for a in push] == ["C-PUSH"]
    assert [a["customer_id"] for a in sms] == ["C-SMS"]  # push disabled: fell back to SMS

    action = rm[0]
    assert action["rule_id"] == "loan-dropoff-rm-call"
    assert action["rule_version"] == 1
    assert action["trigger_event_ids"] == [rm_event["event_id"]]
    assert action["params"]["abandoned_step"] == 4
    assert action["params"]["rm_id"] == "RM001"
    assert action["ruleset_version"].startswith("rs-")
    assert action["action_id"].startswith("act_")

    decisions = {d["customer_id"]: d for d in _on(records, t.decisions)}
    assert decisions["C-OUT"]["outcome"] == "suppressed"
    assert decisions["C-OUT"]["reason_code"] == "marketing_opt_out"
    assert decisions["C-PUSH"]["evidence"] == {
        "event.flow": "personal_loan_application",
        "event.step": 3,
        "profile.tier": "mass",
    }
    assert decisions["C-PUSH"]["action_id"] == push[0]["action_id"]


def test_redelivered_event_is_not_contacted_twice(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-DUP"))
    event = click("C-DUP")
    k.send(t.app_click, event)
    k.send(t.app_click, event)
    k.send(t.app_click, click("C-DUP", screen="home"))  # a marker processed after both
    k.send(t.transaction, transaction("C-DUP"))

    records = k.collect([t.actions(Channel.PUSH)], until=lambda r: len(r) >= 2, timeout=20)
    rules = sorted(v["rule_id"] for _, v in records)
    assert rules == ["mortgage-calculator-interest", "salary-wealth-offer"]


POISON: list[tuple[str, bytes | None, bytes]] = [
    ("malformed_json", b"C1", b'{"event_type": "drop_off", "event_id": '),
    (
        "missing_field",
        b"C1",
        b'{"event_type":"drop_off","event_id":"e-1","occurred_at":"2026-11-02T10:00:00Z","flow":"f","step":3,"steps_total":5}',
    ),
    (
        "invalid_field",
        b"C1",
        b'{"event_type":"transaction","event_id":"e-2","customer_id":"C1","occurred_at":"2026-11-02T10:00:00Z","amount":"lots","currency":"EUR","direction":"credit","category":"salary"}',
    ),
    (
        "unknown_event_type",
        b"C1",
        b'{"event_type":"atm_withdrawal","event_id":"e-3","customer_id":"C1","occurred_at":"2026-11-02T10:00:00Z"}',
    ),
]


def test_poison_messages_reach_the_dead_letter_topic_and_the_worker_keeps_going(
    kairos: Any,
) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    worker = k.start_worker()
    t = k.topics
    for _, key, raw in POISON:
        k.send(t.transaction, raw, key=key)
    k.send_profiles(profile("C-AFTER"))
    k.send(t.drop_off, drop_off("C-AFTER", step=3))

    records = k.collect(
        [t.dead_letter, t.actions(Channel.PUSH)],
        until=lambda r: (
            len(_on(r, t.dead_letter)) >= len(POISON) and len(_on(r, t.actions(Channel.PUSH))) >= 1
        ),
    )
    dead = _on(records, t.dead_letter)
    assert sorted(d["error_type"] for d in dead) == sorted(kind for kind, _, _ in POISON)
    for letter in dead:
        assert letter["source_topic"] == t.transaction
        assert letter["reason"]
        assert any(letter["raw_preview"] == raw.decode() for _, _, raw in POISON)
    unknown = next(d for d in dead if d["error_type"] == "unknown_event_type")
    assert "atm_withdrawal" in unknown["reason"]
    assert [a["customer_id"] for a in _on(records, t.actions(Channel.PUSH))] == ["C-AFTER"]
    assert worker.is_running()


def test_state_is_restored_from_the_changelog_after_losing_the_local_state(
    kairos: Any, tmp_path: Path
) -> None:
    # A rule that can only fire if the worker remembers an earlier event of this customer.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "second.yaml").write_text(
        """
rules:
  - id: second-drop-off
    version: 1
    event: drop_off
    when: state.event_counts.drop_off >= 1
    channels: [sms]
    template: second_drop_off
"""
    )
    k = kairos(rules_path=rules)
    worker = k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-MEM", consent={"sms": True, "push": False, "rm": False}))
    k.send(t.drop_off, drop_off("C-MEM"))
    assert worker.wait_metric("kairos_events_consumed_total", 1, event_type="drop_off") == 1
    worker.stop()
    state_dir = Path(k.env["KAIROS_STATE_DIR"])
    assert state_dir.exists()
    shutil.rmtree(state_dir)

    k.start_worker()
    second = drop_off("C-MEM")
    k.send(t.drop_off, second)
    records = k.collect([t.actions(Channel.SMS)], until=lambda r: len(r) >= 1)
    assert [v["trigger_event_ids"] for _, v in records] == [[second["event_id"]]]
