"""Campaigns in waves: push first; not opened in a day, an SMS; failed, an RM task."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.engine import apply_feedback, apply_profile_update, decide, fire_due_timers
from rules.ruleset import Ruleset
from schemas.actions import Action, Channel
from schemas.codec import decode_event, decode_profile
from schemas.decisions import Outcome
from schemas.feedback import Feedback
from schemas.state import CustomerState
from testkit.factories import drop_off, profile, transaction
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from, sms_wave

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
GRACE = timedelta(seconds=30)
_ids = itertools.count(1)

SMS_WAVE = sms_wave("24h")

RM_ON_FAILURE = """
  - id: nudge-rm-on-failure
    version: 1
    event: drop_off
    wave: {after: loan-dropoff-digital-nudge, on: [failed], within: 2d}
    channels: [sms]
    template: loan_application_call_me
    priority: 70
    ttl: 72h
"""


def _state() -> CustomerState:
    raw = profile("C1", timezone="UTC", updated_at=(NOW - timedelta(days=1)).isoformat())
    return apply_profile_update(None, decode_profile(json.dumps(raw).encode()))


def _pushed(rules: Ruleset) -> tuple[CustomerState, Action]:
    event = decode_event(json.dumps(drop_off("C1", step=4, occurred_at=NOW.isoformat())).encode())
    verdict = decide(event, _state(), rules, NOW)
    [push] = verdict.actions
    assert push.channel is Channel.PUSH
    assert (push.campaign, push.wave, push.parent_action_id) == (
        "loan-dropoff-digital-nudge",
        1,
        None,
    )
    return verdict.state, push


def _report(action: Action, status: str, after: timedelta, **fields: Any) -> Feedback:
    return Feedback.model_validate(
        {
            "feedback_id": f"fb-{next(_ids)}",
            "action_id": action.action_id,
            "customer_id": "C1",
            "channel": action.channel.value,
            "status": status,
            "occurred_at": (NOW + after).isoformat(),
            **fields,
        }
    )


def test_a_push_not_opened_in_a_day_is_followed_by_the_sms_wave() -> None:
    rules = ruleset_from(IMMEDIATE_RULES + SMS_WAVE)
    state, push = _pushed(rules)
    assert [t.kind for t in state.timers] == ["wave"]
    early = fire_due_timers(state, rules, NOW + timedelta(hours=23))
    assert early.actions == []
    verdict = fire_due_timers(state, rules, NOW + timedelta(hours=24) + GRACE)
    [sms] = verdict.actions
    assert (sms.rule_id, sms.channel) == ("nudge-sms-wave", Channel.SMS)
    assert (sms.campaign, sms.wave, sms.parent_action_id) == (
        "loan-dropoff-digital-nudge",
        2,
        push.action_id,
    )
    assert sms.trigger_event_ids == push.trigger_event_ids, "the wave keeps the trigger"
    assert sms.params == {"resume_step": 4}
    assert verdict.state.timers == []
    again = fire_due_timers(state, rules, NOW + timedelta(hours=24) + GRACE)
    assert [a.action_id for a in again.actions] == [sms.action_id], "same moment, same id"


def test_a_push_that_was_opened_ends_the_campaign_there() -> None:
    rules = ruleset_from(IMMEDIATE_RULES + SMS_WAVE)
    state, push = _pushed(rules)
    opened = apply_feedback(state, _report(push, "opened", timedelta(hours=2)), rules, NOW)
    assert opened.state.timers == []
    assert [(t.rule_id, t.change) for t in opened.timers] == [("nudge-sms-wave", "cancelled")]
    later = fire_due_timers(opened.state, rules, NOW + timedelta(days=2))
    assert later.actions == []


def test_an_outcome_wave_goes_out_when_the_outcome_is_reported_and_not_otherwise() -> None:
    rules = ruleset_from(IMMEDIATE_RULES + RM_ON_FAILURE)
    state, push = _pushed(rules)
    failed = apply_feedback(
        state, _report(push, "failed", timedelta(hours=1), failure="soft"), rules, NOW
    )
    [follow_up] = failed.actions
    assert (follow_up.rule_id, follow_up.parent_action_id) == (
        "nudge-rm-on-failure",
        push.action_id,
    )
    quiet = fire_due_timers(state, rules, NOW + timedelta(days=3))  # no failure ever came
    assert quiet.actions == []
    assert [(t.rule_id, t.change) for t in quiet.timers] == [("nudge-rm-on-failure", "dropped")]


def test_a_customer_held_out_of_the_campaign_is_held_out_of_every_wave() -> None:
    held = IMMEDIATE_RULES.replace("    priority: 70\n", "    priority: 70\n    holdout: 100\n", 1)
    rules = ruleset_from(held + SMS_WAVE)
    event = decode_event(json.dumps(drop_off("C1", step=4, occurred_at=NOW.isoformat())).encode())
    first = decide(event, _state(), rules, NOW)
    assert first.actions == [] and first.decisions[0].outcome is Outcome.HELD_OUT
    verdict = fire_due_timers(first.state, rules, NOW + timedelta(days=1) + GRACE)
    assert verdict.actions == []
    assert [(d.rule_id, d.outcome) for d in verdict.decisions] == [
        ("nudge-sms-wave", Outcome.HELD_OUT)
    ]


def test_a_goal_reached_ends_the_campaigns_pending_waves() -> None:
    goal = IMMEDIATE_RULES.replace(
        "    priority: 70\n",
        "    priority: 70\n    goal: {event: transaction, when: 'event.category == \"salary\"', "
        "within: 7d}\n",
        1,
    )
    rules = ruleset_from(goal + SMS_WAVE)
    state, _ = _pushed(rules)
    at = NOW + timedelta(hours=3)
    salary = decode_event(json.dumps(transaction("C1", occurred_at=at.isoformat())).encode())
    verdict = decide(salary, state, rules, at)
    assert [c.rule_id for c in verdict.conversions] == ["loan-dropoff-digital-nudge"]
    assert [t for t in verdict.state.timers if t.kind == "wave"] == []


@pytest.mark.parametrize(
    ("wave", "message"),
    [
        (SMS_WAVE.replace("after: loan-dropoff-digital-nudge", "after: loan-dropof"), "unknown"),
        (
            SMS_WAVE.replace("event: drop_off", "event: app_click").replace(
                '    params: {resume_step: "{{ event.step }}"}\n', ""
            ),
            "campaign's trigger",
        ),
        (SMS_WAVE.replace("    ttl: 48h\n", "    ttl: 48h\n    holdout: 10\n"), "holdout"),
        (SMS_WAVE.replace("unless: [opened, clicked]", "unless: [opened], on: [failed]"), "one"),
    ],
)
def test_a_wave_that_cannot_work_is_refused_with_its_line(wave: str, message: str) -> None:
    from rules.errors import RuleFileError as Refused

    with pytest.raises(Refused) as refused:
        ruleset_from(IMMEDIATE_RULES + wave)
    assert any(message in p.message for p in refused.value.problems), refused.value
    assert all(p.line > 1 for p in refused.value.problems)
