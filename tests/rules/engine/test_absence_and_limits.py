from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rules.engine import EngineOptions, decide, fire_due_timers, in_holdout
from rules.offline.replay import Replay
from schemas.codec import decode_event, decode_state, encode
from schemas.decisions import Outcome, Reason
from schemas.profile import CustomerProfile
from testkit.factories import click, drop_off, profile, transaction
from testkit.rulesets import ruleset_from

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
GRACE = EngineOptions(timer_grace=timedelta(seconds=30))

ABSENCE = ruleset_from(
    """
rules:
  - id: not-resumed
    version: 1
    event: drop_off
    when: event.step >= 3
    unless:
      within: 30m
      events:
        - {event: app_click, when: "event.screen == start.flow"}
    channels: [push]
    template: resume
    params: {flow: "{{ event.flow }}"}
"""
)


def _event(builder: Any, minutes: float, **fields: Any) -> Any:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    return decode_event(json.dumps(builder("C1", occurred_at=at, **fields)).encode())


def _replay(ruleset: Any = ABSENCE, **profile_overrides: Any) -> Replay:
    replay = Replay(ruleset, GRACE)
    replay.profile(CustomerProfile.model_validate(profile("C1", **profile_overrides)))
    return replay


def _actions(verdicts: list[Any]) -> list[Any]:
    return [a for v in verdicts for a in v.actions]


def test_absence_fires_once_after_the_wait_plus_grace() -> None:
    replay = _replay()
    start = _event(drop_off, 0, flow="personal_loan_application")
    assert _actions(replay.event(start)) == []
    assert _actions(replay.advance(T0 + timedelta(minutes=30, seconds=29))) == []
    (action,) = _actions(replay.advance(T0 + timedelta(minutes=30, seconds=30)))
    assert action.trigger_event_ids == [start.event_id]
    assert action.params == {"flow": "personal_loan_application"}
    assert action.created_at == T0 + timedelta(minutes=30, seconds=30)
    assert _actions(replay.advance(T0 + timedelta(days=2))) == []  # never twice
    assert replay.states["C1"].timers == []


def test_the_exit_must_match_the_entry() -> None:
    replay = _replay()
    replay.event(_event(drop_off, 0, flow="personal_loan_application"))
    replay.event(_event(click, 5, screen="credit_card_application"))  # another flow
    assert len(_actions(replay.advance(T0 + timedelta(hours=1)))) == 1

    replay = _replay()
    replay.event(_event(drop_off, 0, flow="personal_loan_application"))
    verdicts = replay.event(_event(click, 5, screen="personal_loan_application"))
    assert [c.change for v in verdicts for c in v.timers] == ["cancelled"]
    assert _actions(replay.advance(T0 + timedelta(hours=1))) == []


def test_a_late_exit_within_the_grace_still_cancels() -> None:
    state = decide(_event(drop_off, 0), None, ABSENCE, T0).state
    # processed 30m10s after the drop-off, but it happened at 29 minutes: the customer did resume
    late_exit = _event(click, 29, screen="personal_loan_application")
    verdict = decide(late_exit, state, ABSENCE, T0 + timedelta(minutes=30, seconds=10), GRACE)
    assert verdict.actions == [] and verdict.state.timers == []


def test_an_exit_after_the_deadline_does_not_cancel() -> None:
    replay = _replay()
    replay.event(_event(drop_off, 0))
    verdicts = replay.event(_event(click, 45, screen="personal_loan_application"))
    assert len(_actions(verdicts)) == 1  # fired when time passed 30m30s, before the click


def test_timers_survive_serialisation_and_fire_from_the_stored_state() -> None:
    state = decide(_event(drop_off, 0), None, ABSENCE, T0).state
    restored = decode_state(encode(state))  # what a restarted worker reads from the changelog
    restored = restored.model_copy(
        update={"profile": CustomerProfile.model_validate(profile("C1"))}
    )
    early = fire_due_timers(restored, ABSENCE, T0 + timedelta(minutes=10), GRACE)
    assert early.actions == [] and early.timers == []
    fired = fire_due_timers(restored, ABSENCE, T0 + timedelta(minutes=31), GRACE)
    assert [a.rule_id for a in fired.actions] == ["not-resumed"]
    again = fire_due_timers(fired.state, ABSENCE, T0 + timedelta(minutes=32), GRACE)
    assert again.actions == [] and again.timers == []


def test_a_timer_of_a_removed_rule_is_dropped() -> None:
    state = decide(_event(drop_off, 0), None, ABSENCE, T0).state
    other = ruleset_from(
        "rules: [{id: x, version: 1, event: app_click, channels: [sms], template: t}]"
    )
    verdict = fire_due_timers(state, other, T0 + timedelta(hours=1), GRACE)
    assert [(c.rule_id, c.change) for c in verdict.timers] == [("not-resumed", "dropped")]
    assert verdict.actions == [] and verdict.state.timers == []


SEQUENCE = ruleset_from(
    """
rules:
  - id: calculator-then-salary
    version: 1
    event: transaction
    when: event.category == "salary"
    after: {event: app_click, when: 'event.screen == "mortgage_calculator"', within: 7d}
    channels: [sms]
    template: t
"""
)


def test_sequence_needs_the_earlier_event_within_the_time() -> None:
    replay = _replay(SEQUENCE)
    assert _actions(replay.event(_event(transaction, 0))) == []  # no calculator yet
    replay.event(_event(click, 60, screen="mortgage_calculator"))
    assert len(_actions(replay.event(_event(transaction, 120)))) == 1
    assert _actions(replay.event(_event(transaction, 60 + 8 * 24 * 60))) == []  # 8 days later


LIMITS = ruleset_from(
    """
rules:
  - {id: capped, version: 1, event: app_click, channels: [sms], template: t, max_per_customer: 2}
  - {id: cooled, version: 1, event: transaction, channels: [sms], template: t, cooldown: 1d}
  - id: seasonal
    version: 1
    event: drop_off
    start_at: "2026-12-01T00:00:00+01:00"
    end_at: "2027-01-01T00:00:00+01:00"
    channels: [sms]
    template: t
"""
)


def _outcomes(replay: Replay, events: list[Any]) -> list[tuple[str, str]]:
    return [
        (d.outcome.value, d.reason_code.value)
        for e in events
        for v in replay.event(e)
        for d in v.decisions
    ]


def test_max_per_customer() -> None:
    outcomes = _outcomes(_replay(LIMITS), [_event(click, m) for m in (0, 1, 2)])
    assert outcomes == [("sent", "rule_matched")] * 2 + [("suppressed", "max_per_customer")]


def test_cooldown() -> None:
    outcomes = _outcomes(_replay(LIMITS), [_event(transaction, m) for m in (0, 60, 25 * 60)])
    assert outcomes == [
        ("sent", "rule_matched"),
        ("suppressed", "cooldown"),
        ("sent", "rule_matched"),
    ]


def test_start_and_end_dates_in_event_time() -> None:
    before = _outcomes(_replay(LIMITS), [_event(drop_off, 0)])
    during = _outcomes(_replay(LIMITS), [_event(drop_off, 40 * 24 * 60)])
    assert before == [] and during == [("sent", "rule_matched")]


def test_holdout_is_stable_and_close_to_its_percentage() -> None:
    held = [in_holdout(f"C{i}", "rule-a", 10) for i in range(20_000)]
    assert 0.09 < sum(held) / len(held) < 0.11
    assert held == [in_holdout(f"C{i}", "rule-a", 10) for i in range(20_000)]
    assert not any(in_holdout(f"C{i}", "rule-a", 0) for i in range(1000))


def test_a_held_out_customer_is_recorded_but_not_contacted() -> None:
    ruleset = ruleset_from(
        "rules: [{id: h, version: 1, event: app_click, channels: [sms], template: t, holdout: 50}]"
    )
    customers = [f"C{i}" for i in range(40)]
    held = next(c for c in customers if in_holdout(c, "h", 50))
    event = decode_event(json.dumps(click(held)).encode())
    state = decide(
        decode_event(json.dumps(click(held)).encode()), None, ruleset, T0
    ).state.model_copy(update={"profile": CustomerProfile.model_validate(profile(held))})
    verdict = decide(event, state, ruleset, datetime.now(UTC))
    assert verdict.actions == []
    assert [(d.outcome, d.reason_code) for d in verdict.decisions] == [
        (Outcome.HELD_OUT, Reason.HOLDOUT)
    ]
