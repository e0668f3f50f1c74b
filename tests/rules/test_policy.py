from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rules.engine import EngineOptions
from rules.offline.replay import Replay
from rules.policy import Policy, PolicySpec
from schemas.actions import Channel
from schemas.codec import decode_event
from schemas.profile import CustomerProfile
from schemas.state import ContactRecord
from testkit.factories import click, drop_off, profile
from testkit.rulesets import ruleset_from

MADRID = ZoneInfo("Europe/Madrid")
POLICY = """
policy:
  caps:
    - {channel: sms, max: 1, per: day}
    - {channel: push, max: 3, per: week}
    - {channel: any, max: 4, per: 7d}
  quiet_hours:
    - {channels: [sms, push], start: "21:00", end: "08:00", action: defer}
"""
RULES = (
    POLICY
    + """
rules:
  - {id: nudge, version: 1, event: app_click, when: 'event.screen == "offer"',
     channels: [sms, push], template: t, ttl: 24h}
  - {id: flash, version: 1, event: app_click, when: 'event.screen == "flash"', channels: [sms],
     template: t, ttl: 2h}
  - {id: strict, version: 1, event: app_click, when: 'event.screen == "strict"', channels: [push],
     template: t, quiet_hours: drop}
"""
)
NO_GRACE = EngineOptions(timer_grace=timedelta(0))


def _local(text: str, zone: ZoneInfo = MADRID) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def _replay(**overrides: Any) -> Replay:
    replay = Replay(ruleset_from(RULES), NO_GRACE)
    replay.profile(
        CustomerProfile.model_validate(
            profile("C1", updated_at="2026-01-01T00:00:00Z", **overrides)
        )
    )
    return replay


def _click(at: datetime, screen: str = "offer") -> Any:
    return decode_event(json.dumps(click("C1", occurred_at=at.isoformat(), screen=screen)).encode())


def _decisions(verdicts: list[Any]) -> list[tuple[str, str, str | None]]:
    return [
        (d.outcome.value, d.reason_code.value, d.channel.value if d.channel else None)
        for v in verdicts
        for d in v.decisions
    ]


def test_caps_count_the_customers_calendar_day_and_fall_back_to_the_next_channel() -> None:
    replay = _replay()
    first = replay.event(_click(_local("2026-11-02T10:00")))
    second = replay.event(_click(_local("2026-11-02T20:30")))  # sms used today -> push
    third = replay.event(_click(_local("2026-11-03T08:05")))  # a new local day -> sms again
    assert _decisions(first) == [("sent", "rule_matched", "sms")]
    assert _decisions(second) == [("sent", "rule_matched", "push")]
    assert _decisions(third) == [("sent", "rule_matched", "sms")]
    assert "sms: 1 of 1 per day" in second[0].actions[0].reason


def test_a_cap_reason_names_the_channel_once() -> None:
    replay = _replay()
    replay.event(_click(_local("2026-11-02T10:00")))
    fallback = replay.event(_click(_local("2026-11-02T11:00")))
    capped = replay.event(_click(_local("2026-11-02T12:00"), screen="flash"))
    assert fallback[0].actions[0].reason == "nudge (via push (skipped sms: 1 of 1 per day))"
    assert _decisions(capped) == [("suppressed", "frequency_cap", None)]
    assert capped[0].decisions[0].reason == "sms: 1 of 1 per day"


def test_an_all_channel_cap_suppresses_with_its_reason() -> None:
    replay = _replay()
    moments = ["2026-11-02T10:00", "2026-11-02T11:00", "2026-11-02T12:00", "2026-11-03T10:00"]
    for moment in moments:
        replay.event(_click(_local(moment)))
    fifth = replay.event(_click(_local("2026-11-03T11:00")))
    assert _decisions(fifth) == [("suppressed", "frequency_cap", None)]
    assert fifth[0].decisions[0].reason == (
        "sms: 1 of 1 per day; 4 of 4 per 7d across channels; push: 4 of 4 per 7d across channels"
    )


def test_the_day_boundary_is_the_customers_not_the_servers() -> None:
    # 23:30 UTC on 2 Nov is already 3 Nov in Madrid; 22:30 UTC is still 2 Nov (23:30 local)
    policy = Policy.from_spec(
        PolicySpec.model_validate(
            json.loads(json.dumps({"caps": [{"channel": "sms", "max": 1, "per": "day"}]}))
        )
    )
    sent = [
        ContactRecord(
            channel=Channel.SMS, rule_id="r", at=datetime(2026, 11, 2, 22, 30, tzinfo=UTC)
        )
    ]
    assert policy.capped_channels(sent, datetime(2026, 11, 2, 22, 50, tzinfo=UTC), MADRID)
    assert not policy.capped_channels(sent, datetime(2026, 11, 2, 23, 30, tzinfo=UTC), MADRID)
    tokyo = ZoneInfo("Asia/Tokyo")  # already 3 Nov 07:30 there at 22:30 UTC
    assert not policy.capped_channels(sent, datetime(2026, 11, 3, 15, 30, tzinfo=UTC), tokyo)


def test_quiet_hours_defer_to_08_00_local_and_the_contact_goes_out_then() -> None:
    replay = _replay()
    night = replay.event(_click(_local("2026-11-02T23:10")))
    assert _decisions(night) == [("deferred", "quiet_hours", "sms")]
    assert night[0].actions == []
    (timer,) = replay.states["C1"].timers
    assert timer.due_at == _local("2026-11-03T08:00")
    morning = replay.advance(_local("2026-11-03T09:00"))
    (action,) = [a for v in morning for a in v.actions]
    assert action.created_at == _local("2026-11-03T08:00")
    assert action.channel is Channel.SMS
    assert _decisions(morning) == [("sent", "rule_matched", "sms")]


def test_a_deferral_carries_its_time_as_a_typed_field() -> None:
    replay = _replay()
    night = replay.event(_click(_local("2026-11-02T23:10")))
    (deferred,) = [d for v in night for d in v.decisions]
    assert deferred.deferred_until == _local("2026-11-03T08:00")
    assert deferred.deferred_until == replay.states["C1"].timers[0].due_at
    morning = replay.advance(_local("2026-11-03T09:00"))
    (sent,) = [d for v in morning for d in v.decisions]
    assert sent.deferred_until is None, "only a deferral has a time to wait for"


def test_quiet_hours_across_the_dst_change() -> None:
    policy = Policy.from_spec(
        PolicySpec.model_validate(
            {"quiet_hours": [{"channels": ["sms"], "start": "21:00", "end": "08:00"}]}
        )
    )
    # Madrid leaves summer time on 25 Oct 2026 at 03:00: 08:00 that morning is 07:00 UTC
    late = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 local (CEST)
    assert policy.next_allowed(Channel.SMS, late, MADRID) == datetime(
        2026, 10, 25, 7, 0, tzinfo=UTC
    )
    # and enters it on 29 Mar 2026: 08:00 CEST is 06:00 UTC
    spring = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert policy.next_allowed(Channel.SMS, spring, MADRID) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert (
        policy.next_allowed(Channel.SMS, datetime(2026, 3, 29, 12, 0, tzinfo=UTC), MADRID) is None
    )


@pytest.mark.parametrize(
    ("zone", "local", "quiet"),
    [
        ("Europe/Madrid", "2026-11-02T20:59", False),
        ("Europe/Madrid", "2026-11-02T21:00", True),
        ("Europe/Madrid", "2026-11-03T07:59", True),
        ("Europe/Madrid", "2026-11-03T08:00", False),
        ("America/Mexico_City", "2026-11-02T22:00", True),
        ("Asia/Tokyo", "2026-11-02T12:00", False),
    ],
)
def test_quiet_hours_are_in_the_customers_timezone(zone: str, local: str, quiet: bool) -> None:
    policy = Policy.from_spec(
        PolicySpec.model_validate(
            {"quiet_hours": [{"channels": ["push"], "start": "21:00", "end": "08:00"}]}
        )
    )
    at = _local(local, ZoneInfo(zone)).astimezone(UTC)
    assert (policy.next_allowed(Channel.PUSH, at, ZoneInfo(zone)) is not None) is quiet


def test_a_rule_can_drop_instead_of_deferring() -> None:
    replay = _replay()
    verdicts = replay.event(_click(_local("2026-11-02T22:00"), screen="strict"))
    assert _decisions(verdicts) == [("suppressed", "quiet_hours", "push")]
    assert replay.states["C1"].timers == []


def test_a_contact_that_would_expire_in_quiet_hours_is_not_deferred() -> None:
    replay = _replay()
    verdicts = replay.event(_click(_local("2026-11-02T22:00"), screen="flash"))  # ttl 2h
    assert _decisions(verdicts) == [("suppressed", "expired", "sms")]


def test_withdrawing_consent_cancels_the_deferred_contact() -> None:
    replay = _replay()
    replay.event(_click(_local("2026-11-02T23:10")))
    withdrawn = profile(
        "C1",
        updated_at="2026-11-02T23:30:00+01:00",
        consent={"sms": False, "push": True, "rm": False},
    )
    cancelled = replay.profile(CustomerProfile.model_validate(withdrawn))
    assert _decisions(cancelled) == [("suppressed", "consent_withdrawn", "sms")]
    assert replay.states["C1"].timers == []
    assert [a for v in replay.advance(_local("2026-11-03T12:00")) for a in v.actions] == []


def test_a_deferred_contact_is_rechecked_against_caps_when_due() -> None:
    replay = _replay()
    replay.event(_click(_local("2026-11-02T23:10")))  # deferred to 08:00
    replay.event(_click(_local("2026-11-03T07:59"), screen="x"))  # unrelated; no rule
    # a daytime contact at 08:00 on another channel would not block sms; an sms one does:
    first = replay.advance(_local("2026-11-03T08:00"))
    assert _decisions(first) == [("sent", "rule_matched", "sms")]
    second = replay.event(_click(_local("2026-11-03T09:00")))
    assert _decisions(second) == [("sent", "rule_matched", "push")]  # sms cap reached today


def test_policy_problems_are_reported_with_their_lines() -> None:
    from rules.errors import RuleFileError

    bad = """
policy:
  caps:
    - {channel: fax, max: 1, per: day}
    - {channel: sms, max: 1, per: fortnight}
  quiet_hours:
    - {channels: [sms], start: "25:00", end: "08:00"}
  quiet: true
rules: []
"""
    with pytest.raises(RuleFileError) as caught:
        ruleset_from(bad)
    found = {(p.line, p.message.split(":")[0]) for p in caught.value.problems}
    assert (4, "policy, caps.0.channel") in found
    assert any(line == 5 for line, _ in found)
    assert any(line == 7 for line, _ in found)
    assert (8, "policy") in found


def test_rules_firing_within_the_decision_window_compete_as_one_moment() -> None:
    ruleset = ruleset_from(
        """
policy: {decision_window: 1m}
rules:
  - {id: low, version: 1, event: app_click, when: 'event.screen == "a"', channels: [sms],
     template: t, priority: 10}
  - {id: high, version: 1, event: app_click, when: 'event.screen == "b"', channels: [push],
     template: t, priority: 90}
"""
    )
    replay = Replay(ruleset, NO_GRACE)
    replay.profile(CustomerProfile.model_validate(profile("C1", updated_at="2026-01-01T00:00:00Z")))
    start = _local("2026-11-02T10:00")
    assert _decisions(replay.event(_click(start, screen="a"))) == []  # waiting for the window
    assert _decisions(replay.event(_click(start + timedelta(seconds=20), screen="b"))) == []
    closed = replay.advance(start + timedelta(minutes=2))
    assert sorted(_decisions(closed)) == [
        ("sent", "rule_matched", "push"),
        ("suppressed", "arbitration_lost", "sms"),
    ]
    (action,) = [a for v in closed for a in v.actions]
    assert action.rule_id == "high" and action.created_at == start + timedelta(minutes=1)


def test_a_new_wait_of_a_rule_keeps_its_deferred_contact() -> None:
    ruleset = ruleset_from(
        POLICY
        + """
rules:
  - id: resume
    version: 1
    event: drop_off
    unless: {within: 30m, events: [{event: app_click, when: 'event.screen == "resume"'}]}
    channels: [push]
    template: t
"""
    )
    replay = Replay(ruleset, NO_GRACE)
    replay.profile(CustomerProfile.model_validate(profile("C1", updated_at="2026-01-01T00:00:00Z")))
    first = json.dumps(drop_off("C1", occurred_at=_local("2026-11-02T22:00").isoformat()))
    replay.event(decode_event(first.encode()))
    replay.advance(_local("2026-11-02T22:31"))  # fired in quiet hours: deferred to 08:00
    second = json.dumps(drop_off("C1", occurred_at=_local("2026-11-02T23:00").isoformat()))
    replay.event(decode_event(second.encode()))  # a new wait of the same rule
    kinds = sorted(t.kind for t in replay.states["C1"].timers)
    assert kinds == ["absence", "deferred"]
