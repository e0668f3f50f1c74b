from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rules.engine import apply_profile_update, decide
from rules.language.loader import load_ruleset
from rules.ruleset import Ruleset
from schemas.actions import Channel
from schemas.codec import decode_event, decode_profile
from schemas.decisions import Outcome, Reason
from schemas.state import CustomerState
from testkit.factories import click, drop_off, profile, transaction
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def examples() -> Ruleset:
    return ruleset_from(IMMEDIATE_RULES)


def _state(**profile_overrides: Any) -> CustomerState:
    raw = json.dumps(
        profile("C1", updated_at=(NOW - timedelta(days=1)).isoformat(), **profile_overrides)
    )
    return apply_profile_update(None, decode_profile(raw.encode()))


def _event(builder: Any, **overrides: Any) -> Any:
    overrides.setdefault("occurred_at", (NOW - timedelta(seconds=5)).isoformat())
    return decode_event(json.dumps(builder("C1", **overrides)).encode())


def test_a_matching_rule_sends_one_action_with_its_explanation(examples: Ruleset) -> None:
    event = _event(drop_off, step=4)
    verdict = decide(event, _state(), examples, NOW)
    (action,) = verdict.actions
    assert action.channel is Channel.PUSH
    assert action.rule_id == "loan-dropoff-digital-nudge"
    assert action.trigger_event_ids == [event.event_id]
    assert action.expires_at == event.occurred_at + timedelta(hours=24)
    assert action.params == {
        "resume_step": 4,
        "message": "You're 1 step(s) away",
    }
    (decision,) = verdict.decisions
    assert decision.outcome is Outcome.SENT
    assert decision.action_id == action.action_id
    assert decision.evidence == {
        "event.flow": "personal_loan_application",
        "event.step": 4,
        "profile.tier": "mass",
    }
    assert verdict.state.event_counts == {"drop_off": 1}
    assert verdict.state.contacts_sent == 1


def test_action_id_is_deterministic(examples: Ruleset) -> None:
    event = _event(drop_off, step=4)
    first = decide(event, _state(), examples, NOW)
    again = decide(event, _state(), examples, NOW + timedelta(minutes=3))
    assert first.actions[0].action_id == again.actions[0].action_id


def test_a_redelivered_event_decides_nothing(examples: Ruleset) -> None:
    event = _event(drop_off, step=4)
    first = decide(event, _state(), examples, NOW)
    second = decide(event, first.state, examples, NOW)
    assert second.duplicate and not second.actions and second.state == first.state


@pytest.mark.parametrize(
    ("profile_overrides", "reason"),
    [
        ({"marketing_opt_out": True}, Reason.MARKETING_OPT_OUT),
        ({"consent": {"sms": False, "push": False, "rm": False}}, Reason.NO_CONSENT),
    ],
)
def test_consent_is_absolute(
    examples: Ruleset, profile_overrides: dict[str, Any], reason: Reason
) -> None:
    verdict = decide(_event(drop_off, step=4), _state(**profile_overrides), examples, NOW)
    assert verdict.actions == []
    assert [(d.outcome, d.reason_code) for d in verdict.decisions] == [(Outcome.SUPPRESSED, reason)]


def test_no_profile_means_no_consent(examples: Ruleset) -> None:
    verdict = decide(_event(drop_off, step=4), None, examples, NOW)
    assert [d.reason_code for d in verdict.decisions] == [Reason.NO_PROFILE]


def test_push_disabled_falls_back_to_sms(examples: Ruleset) -> None:
    verdict = decide(_event(drop_off, step=4), _state(push_enabled=False), examples, NOW)
    assert [a.channel for a in verdict.actions] == [Channel.SMS]
    assert "push: notifications disabled on device" in verdict.actions[0].reason


def test_only_push_and_it_is_disabled(examples: Ruleset) -> None:
    verdict = decide(_event(transaction), _state(push_enabled=False), examples, NOW)
    assert [d.reason_code for d in verdict.decisions] == [Reason.PUSH_DISABLED]


def test_rm_needs_an_assigned_relationship_manager(examples: Ruleset) -> None:
    consent = {"sms": True, "push": True, "rm": True}
    with_rm = decide(
        _event(drop_off, step=3),
        _state(tier="private", consent=consent, rm_id="RM7"),
        examples,
        NOW,
    )
    assert [a.channel for a in with_rm.actions] == [Channel.RM]
    without = decide(
        _event(drop_off, step=3), _state(tier="private", consent=consent), examples, NOW
    )
    assert without.actions == [] and without.decisions[0].reason_code is Reason.NO_CONSENT


def test_an_expired_moment_is_not_contacted(examples: Ruleset) -> None:
    old = _event(click, occurred_at=(NOW - timedelta(hours=13)).isoformat())
    verdict = decide(old, _state(), examples, NOW)
    assert verdict.actions == [] and verdict.decisions[0].reason_code is Reason.EXPIRED


def test_arbitration_sends_only_the_highest_priority(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - {id: low, version: 1, event: app_click, channels: [sms], template: a, priority: 10}
  - {id: high, version: 1, event: app_click, channels: [push], template: b, priority: 90}
  - {id: also-high, version: 2, event: app_click, channels: [sms], template: c, priority: 90}
"""
    )
    verdict = decide(_event(click), _state(), load_ruleset(tmp_path), NOW)
    assert [a.rule_id for a in verdict.actions] == ["also-high"]  # tie broken by rule id
    lost = {
        d.rule_id: d.reason for d in verdict.decisions if d.reason_code is Reason.ARBITRATION_LOST
    }
    assert set(lost) == {"low", "high"}
    assert "also-high (priority 90) won" in lost["low"]


def test_a_runtime_error_in_one_rule_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - {id: divides, version: 1, event: transaction, channels: [sms], template: a,
     when: "event.amount / (event.amount - event.amount) > 1"}
  - {id: fine, version: 1, event: transaction, channels: [sms], template: b}
"""
    )
    verdict = decide(_event(transaction), _state(), load_ruleset(tmp_path), NOW)
    assert [a.rule_id for a in verdict.actions] == ["fine"]
    assert [f.rule_id for f in verdict.failures] == ["divides"]


def test_rules_see_state_before_the_event(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - {id: third-click, version: 1, event: app_click, when: "state.event_counts.app_click == 2",
     channels: [sms], template: a}
"""
    )
    ruleset = load_ruleset(tmp_path)
    state = _state()
    fired = []
    for _ in range(4):
        verdict = decide(_event(click), state, ruleset, NOW)
        fired.append(bool(verdict.actions))
        state = verdict.state
    assert fired == [False, False, True, False]


def test_an_older_profile_does_not_replace_a_newer_one() -> None:
    state = _state(marketing_opt_out=True)
    stale = decode_profile(
        json.dumps(profile("C1", updated_at=(NOW - timedelta(days=9)).isoformat())).encode()
    )
    assert apply_profile_update(state, stale).profile.marketing_opt_out is True  # type: ignore[union-attr]


WINDOWED_FEATURE = """
features:
  - name: clicks_1h
    event: app_click
    aggregate: count
    window: 1h
rules:
  - id: busy-clicker
    version: 1
    event: app_click
    when: features.clicks_1h >= 3
    channels: [push]
    template: t
    priority: 1
"""


def test_one_event_stamped_hours_ahead_does_not_make_the_next_ones_late() -> None:
    rules = ruleset_from(WINDOWED_FEATURE)
    state = _state()
    ahead = decide(
        _event(click, occurred_at=(NOW + timedelta(hours=6)).isoformat()), state, rules, NOW
    )
    assert ahead.state.watermark == NOW + timedelta(minutes=5), "capped at the clock + skew"
    state = ahead.state
    for second in (1, 2):
        verdict = decide(
            _event(click, occurred_at=(NOW + timedelta(seconds=second)).isoformat()),
            state,
            rules,
            NOW + timedelta(seconds=second),
        )
        assert not verdict.late, "a correctly stamped event after the jump still counts"
        state = verdict.state
    counted = sum(bucket[0] for bucket in state.features["clicks_1h"].buckets.values())
    assert counted == 3, "the two later clicks were counted (before the cap: only the first)"
