"""Channel feedback folded into the contacts it reports on: statuses, bounces, unsubscribes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from rules.engine import apply_feedback, apply_profile_update, decide, dispatch
from rules.ruleset import Ruleset
from schemas.actions import Action, Channel
from schemas.codec import decode_event, decode_profile
from schemas.decisions import Outcome, Reason
from schemas.feedback import Feedback
from schemas.state import CustomerState
from testkit.factories import click, drop_off, profile, transaction
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def rules() -> Ruleset:
    return ruleset_from(IMMEDIATE_RULES)


def _profiled(**overrides: Any) -> CustomerState:
    overrides.setdefault("updated_at", (NOW - timedelta(days=1)).isoformat())
    overrides.setdefault("timezone", "UTC")
    raw = json.dumps(profile("C1", **overrides)).encode()
    return apply_profile_update(None, decode_profile(raw))


def _contacted(rules: Ruleset, state: CustomerState) -> tuple[CustomerState, Action]:
    """A drop-off that the digital nudge answers with one push."""
    event = decode_event(json.dumps(drop_off("C1", step=4, occurred_at=NOW.isoformat())).encode())
    verdict = decide(event, state, rules, NOW)
    [action] = verdict.actions
    return verdict.state, action


def _feedback(action: Action, status: str, **fields: Any) -> Feedback:
    return Feedback.model_validate(
        {
            "feedback_id": f"fb-{next(_ids)}",
            "action_id": action.action_id,
            "customer_id": "C1",
            "channel": action.channel.value,
            "status": status,
            "occurred_at": (NOW + timedelta(minutes=1)).isoformat(),
            **fields,
        }
    )


def test_a_contact_moves_forward_with_its_feedback_and_never_back(rules: Ruleset) -> None:
    state, action = _contacted(rules, _profiled())
    assert state.contacts[-1].status == "sent"
    opened = apply_feedback(state, _feedback(action, "opened"), rules, NOW)
    assert opened.feedback == "applied"
    assert opened.state.contacts[-1].status == "opened"
    late = apply_feedback(opened.state, _feedback(action, "delivered"), rules, NOW)
    assert late.feedback == "applied"
    assert late.state.contacts[-1].status == "opened", "a late 'delivered' undoes nothing"


def test_a_resent_report_is_applied_once_and_an_unknown_action_is_counted(
    rules: Ruleset,
) -> None:
    state, action = _contacted(rules, _profiled())
    report = _feedback(action, "clicked")
    first = apply_feedback(state, report, rules, NOW)
    again = apply_feedback(first.state, report, rules, NOW)
    assert (first.feedback, again.feedback) == ("applied", "duplicate")
    stranger = _feedback(action, "opened", action_id="act_not_ours")
    assert apply_feedback(state, stranger, rules, NOW).feedback == "unknown_action"
    assert dispatch(stranger, None, rules, NOW) is None, "no state, nothing to act on"


def test_a_hard_bounce_makes_the_channel_unreachable_until_the_profile_changes(
    rules: Ruleset,
) -> None:
    state, action = _contacted(rules, _profiled())
    assert action.channel is Channel.PUSH
    bounced = apply_feedback(state, _feedback(action, "failed", failure="hard"), rules, NOW)
    assert Channel.PUSH in bounced.state.unreachable
    later = decode_event(
        json.dumps(click("C1", occurred_at=(NOW + timedelta(hours=1)).isoformat())).encode()
    )
    verdict = decide(later, bounced.state, rules, NOW + timedelta(hours=1))
    [fallback] = verdict.actions
    assert fallback.channel is Channel.SMS
    assert "push: hard bounce" in fallback.reason
    newer = json.dumps(profile("C1", timezone="UTC", updated_at=NOW.isoformat())).encode()
    assert apply_profile_update(bounced.state, decode_profile(newer)).unreachable == {}


def test_a_soft_failure_changes_the_status_but_not_the_reachability(rules: Ruleset) -> None:
    state, action = _contacted(rules, _profiled())
    soft = apply_feedback(state, _feedback(action, "failed", failure="soft"), rules, NOW)
    assert soft.state.contacts[-1].status == "failed"
    assert soft.state.unreachable == {}


def test_a_rule_whose_only_channel_bounced_is_suppressed_as_unreachable(
    rules: Ruleset,
) -> None:
    state, action = _contacted(rules, _profiled())
    bounced = apply_feedback(state, _feedback(action, "failed", failure="hard"), rules, NOW)
    salary = decode_event(  # salary-wealth-offer contacts by push only
        json.dumps(transaction("C1", occurred_at=(NOW + timedelta(hours=1)).isoformat())).encode()
    )
    verdict = decide(salary, bounced.state, rules, NOW + timedelta(hours=1))
    assert verdict.actions == []
    [decision] = verdict.decisions
    assert decision.reason_code is Reason.UNREACHABLE
    assert "push: hard bounce" in decision.reason


def test_an_unsubscribe_withdraws_consent_and_cancels_a_deferred_contact(
    rules: Ruleset,
) -> None:
    night = ruleset_from(
        IMMEDIATE_RULES
        + """
policy:
  quiet_hours:
    - {channels: [sms, push], start: "21:00", end: "08:00", action: defer}
"""
    )
    state = _profiled(timezone="Etc/GMT-11")  # 23:00 there at NOW
    state, action = _contacted(ruleset_from(IMMEDIATE_RULES), state)
    event = decode_event(
        json.dumps(click("C1", occurred_at=(NOW + timedelta(minutes=2)).isoformat())).encode()
    )
    deferred = decide(event, state, night, NOW + timedelta(minutes=2))
    assert [d.outcome for d in deferred.decisions] == [Outcome.DEFERRED]
    assert [t.kind for t in deferred.state.timers] == ["deferred"]
    report = _feedback(action, "unsubscribed")
    verdict = apply_feedback(deferred.state, report, night, NOW + timedelta(minutes=3))
    assert verdict.state.profile is not None and verdict.state.profile.consent.push is False
    assert verdict.state.timers == [], "the push deferred to the morning is cancelled"
    assert [d.reason_code for d in verdict.decisions] == [Reason.CONSENT_WITHDRAWN]


def test_a_redelivered_profile_does_not_undo_an_unsubscribe(rules: Ruleset) -> None:
    raw = json.dumps(
        profile("C1", timezone="UTC", updated_at=(NOW - timedelta(days=1)).isoformat())
    ).encode()
    state, action = _contacted(rules, apply_profile_update(None, decode_profile(raw)))
    unsubscribed = apply_feedback(state, _feedback(action, "unsubscribed"), rules, NOW).state
    again = apply_profile_update(unsubscribed, decode_profile(raw))  # at-least-once delivery
    assert again.profile is not None and again.profile.consent.push is False
    newer = json.loads(raw)
    newer["updated_at"] = NOW.isoformat()  # the bank's next profile decides again
    restored = apply_profile_update(again, decode_profile(json.dumps(newer).encode()))
    assert restored.profile is not None and restored.profile.consent.push is True


def test_a_report_naming_another_channel_than_its_action_is_counted_not_applied(
    rules: Ruleset,
) -> None:
    state, action = _contacted(rules, _profiled())
    assert action.channel is Channel.PUSH
    wrong = _feedback(action, "unsubscribed", channel="sms")
    verdict = apply_feedback(state, wrong, rules, NOW)
    assert verdict.feedback == "wrong_channel"
    assert verdict.state.profile == state.profile, "no channel's consent withdrawn"
    assert verdict.state.contacts == state.contacts
    assert apply_feedback(verdict.state, wrong, rules, NOW).feedback == "duplicate"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "failed"}, "'failure'"),
        ({"status": "delivered", "failure": "hard"}, "'failure'"),
        ({"status": "reached"}, "RM tasks only"),
        ({"status": "read"}, "status"),
        ({"occurred_at": "9999-12-31T00:00:00Z"}, "occurred_at"),
    ],
)
def test_feedback_that_cannot_be_true_is_refused(fields: dict[str, Any], message: str) -> None:
    base = {
        "feedback_id": "fb-x",
        "action_id": "act_x",
        "customer_id": "C1",
        "channel": "push",
        "status": "delivered",
        "occurred_at": NOW.isoformat(),
    }
    with pytest.raises(ValidationError, match=message):
        Feedback.model_validate({**base, **fields})


FATIGUE = """
policy:
  fatigue:
    - {channels: [push], after: 2, pause: 7d, ignored_after: 1d}
"""


def _clicks_at(rules: Ruleset, state: CustomerState, *days: int) -> list[Any]:
    """Mortgage-calculator clicks on these days after NOW; the verdict of each."""
    verdicts = []
    for day in days:
        at = NOW + timedelta(days=day)
        event = decode_event(json.dumps(click("C1", occurred_at=at.isoformat())).encode())
        verdict = decide(event, state, rules, at)
        state = verdict.state
        verdicts.append(verdict)
    return verdicts


def test_ignored_pushes_rest_the_channel_and_the_next_contact_goes_by_sms() -> None:
    rules = ruleset_from(IMMEDIATE_RULES + FATIGUE)
    first, second, third = _clicks_at(rules, _profiled(), 0, 2, 4)
    assert [a.channel for a in first.actions + second.actions] == [Channel.PUSH, Channel.PUSH]
    [rested] = third.actions  # two pushes, neither opened within a day: push rests 7 days
    assert rested.channel is Channel.SMS
    assert "last 2 contacts ignored" in rested.reason


def test_an_opened_push_ends_the_streak() -> None:
    tired = ruleset_from(IMMEDIATE_RULES + FATIGUE)
    _, second = _clicks_at(tired, _profiled(), 0, 2)
    opened = apply_feedback(
        second.state, _feedback(second.actions[0], "opened"), tired, NOW + timedelta(days=2)
    )
    [third] = _clicks_at(tired, opened.state, 4)
    assert [a.channel for a in third.actions] == [Channel.PUSH]


def test_a_push_only_rule_on_a_resting_channel_is_suppressed_for_fatigue() -> None:
    rules = ruleset_from(IMMEDIATE_RULES + FATIGUE)
    _, second = _clicks_at(rules, _profiled(), 0, 2)
    at = NOW + timedelta(days=4)
    salary = decode_event(json.dumps(transaction("C1", occurred_at=at.isoformat())).encode())
    verdict = decide(salary, second.state, rules, at)
    [decision] = verdict.decisions
    assert decision.reason_code is Reason.FATIGUE
    later = NOW + timedelta(days=10)  # 7 days after the last ignored push
    salary = decode_event(json.dumps(transaction("C1", occurred_at=later.isoformat())).encode())
    assert [a.channel for a in decide(salary, second.state, rules, later).actions] == [Channel.PUSH]


def test_a_rule_may_try_the_channels_this_customer_engages_with_first() -> None:
    from rules.engine.arbitration import by_engagement
    from schemas.state import ContactRecord

    def contact(channel: Channel, status: str) -> ContactRecord:
        return ContactRecord(channel=channel, rule_id="r", at=NOW, status=status)

    ignored_pushes = [contact(Channel.PUSH, "delivered") for _ in range(3)]
    clicked_sms = [contact(Channel.SMS, "clicked")]
    assert by_engagement([Channel.PUSH, Channel.SMS], []) == [Channel.PUSH, Channel.SMS]
    assert by_engagement([Channel.PUSH, Channel.SMS], ignored_pushes + clicked_sms) == [
        Channel.SMS,
        Channel.PUSH,
    ]
    engaged_rules = ruleset_from(
        IMMEDIATE_RULES.replace(
            "    template: mortgage_advice\n",
            "    template: mortgage_advice\n    channel_order: engagement\n",
        )
    )
    state = _profiled().model_copy(update={"contacts": ignored_pushes + clicked_sms})
    at = NOW + timedelta(hours=1)
    event = decode_event(json.dumps(click("C1", occurred_at=at.isoformat())).encode())
    [action] = decide(event, state, engaged_rules, at).actions
    assert action.channel is Channel.SMS, "push is listed first, but sms is what they answer"
