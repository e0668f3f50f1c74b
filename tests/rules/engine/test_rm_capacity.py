from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.engine import EngineOptions, dispatch, settle_request
from rules.offline.replay import Replay
from schemas.actions import Channel
from schemas.codec import decode_event
from schemas.profile import CustomerProfile
from testkit.factories import drop_off, profile
from testkit.rulesets import ruleset_from

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RULES = """
policy:
  rm_capacity: {per: rm, daily_limit: 1, when_full: next_channel, timezone: Europe/Madrid}
rules:
  - {id: call, version: 1, event: drop_off, channels: [rm, sms], template: t, ttl: 72h}
  - {id: patient-call, version: 1, event: drop_off, when: 'event.flow == "mortgage_application"',
     channels: [rm], template: t, ttl: 72h, rm_when_full: next_day, priority: 90}
"""
CONSENT = {"sms": True, "push": True, "rm": True}


def _replay(*customers: str) -> Replay:
    replay = Replay(ruleset_from(RULES), EngineOptions(timer_grace=timedelta(0)))
    for customer in customers:
        fields = profile(customer, rm_id="RM7", consent=CONSENT, updated_at="2026-01-01T00:00:00Z")
        replay.profile(CustomerProfile.model_validate(fields))
    return replay


def _drop(customer: str, at: datetime, **fields: Any) -> Any:
    raw = drop_off(customer, occurred_at=at.isoformat(), flow="personal_loan_application", **fields)
    return decode_event(json.dumps(raw).encode())


def _sent(verdicts: list[Any]) -> list[tuple[str, str]]:
    return [(a.customer_id, a.channel.value) for v in verdicts for a in v.actions]


def test_a_full_rm_day_falls_back_to_the_next_channel() -> None:
    replay = _replay("C1", "C2")
    first = replay.event(_drop("C1", T0))
    second = replay.event(_drop("C2", T0 + timedelta(minutes=5)))
    assert _sent(first) == [("C1", "rm")]
    assert _sent(second) == [("C2", "sms")]
    (decision,) = [d for v in second for d in v.decisions]
    assert "RM RM7's day is full (2026-11-02)" in decision.reason
    assert replay.states["C2"].contacts[-1].channel.value == "sms"  # the refused RM uncounted
    assert [c.channel.value for c in replay.states["C2"].contacts] == ["sms"]


def test_capacity_is_per_working_day_in_the_rms_time_zone() -> None:
    replay = _replay("C1", "C2")
    replay.event(_drop("C1", T0))
    # 23:30 UTC is already the next day in Madrid: a fresh day of capacity
    late = replay.event(_drop("C2", datetime(2026, 11, 2, 23, 30, tzinfo=UTC)))
    assert _sent(late) == [("C2", "rm")]


def test_a_rule_can_wait_for_the_next_working_day() -> None:
    replay = _replay("C1", "C2")
    replay.event(_drop("C1", T0))
    mortgage = decode_event(
        json.dumps(
            drop_off(
                "C2",
                occurred_at=(T0 + timedelta(minutes=5)).isoformat(),
                flow="mortgage_application",
            )
        ).encode()
    )
    waiting = replay.event(mortgage)
    assert _sent(waiting) == []
    outcomes = sorted((d.outcome.value, d.reason_code.value) for v in waiting for d in v.decisions)
    assert outcomes == [("deferred", "rm_capacity"), ("suppressed", "arbitration_lost")]
    opens = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
    assert replay.states["C2"].timers[0].due_at == opens
    (deferred,) = [d for v in waiting for d in v.decisions if d.outcome.value == "deferred"]
    assert deferred.deferred_until == opens
    next_day = replay.advance(opens + timedelta(minutes=1))
    assert _sent(next_day) == [("C2", "rm")]


@pytest.mark.parametrize("names_the_decision", [True, False], ids=["reply", "older reply"])
def test_a_refusal_forgets_the_rm_contact_the_customers_state_recorded(
    names_the_decision: bool,
) -> None:
    """The state records an RM contact as it asks for capacity; a refusal takes it back."""
    replay = _replay("C1")
    earlier = replay.event(_drop("C1", T0))  # granted: its decision stays recorded
    ruleset, options = replay.ruleset, replay.options
    state = replay.states["C1"].with_decisions([d for v in earlier for d in v.decisions])
    asked = dispatch(_drop("C1", T0 + timedelta(hours=1)), state, ruleset, T0, options)
    assert asked is not None
    (request,) = asked.rm_requests
    recorded = asked.state.with_decisions([*asked.decisions, request.decision])
    reply = settle_request(request, used=1).reply
    assert reply is not None and reply.decision_id == request.decision.decision_id
    if not names_the_decision:
        reply = reply.model_copy(update={"decision_id": None})

    answer = dispatch(reply, recorded, ruleset, T0, options)
    assert answer is not None
    notes = [(n.decision_id, n.channel) for n in answer.state.recent_decisions]
    assert notes == [(d.decision_id, Channel.RM) for v in earlier for d in v.decisions]
