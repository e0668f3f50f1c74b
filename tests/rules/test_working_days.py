"""RM ``next_day`` retries go out on the RMs' next working day, not merely tomorrow.

The calendar is the ``holidays`` library's, named in the policy (``rm_capacity.holidays``)
and checked when the policy loads; without one, Saturday and Sunday are skipped.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from rules.engine import EngineOptions
from rules.errors import HolidayCalendarError, RuleFileError
from rules.offline.replay import Replay
from rules.working_days import _next_working_day, calendar, next_working_day
from schemas.codec import decode_event
from schemas.profile import CustomerProfile
from testkit.factories import drop_off, profile
from testkit.rulesets import ruleset_from

CONSENT = {"sms": True, "push": True, "rm": True}
RULE = """
rules:
  - {id: call, version: 1, event: drop_off, channels: [rm], template: t, ttl: 240h,
     rm_when_full: next_day}
"""


def _rules(holidays: str = "") -> str:
    return (
        f"""
policy:
  rm_capacity:
    per: rm
    daily_limit: 1
    timezone: Europe/London
    opens_at: "09:00"
    {holidays}
"""
        + RULE
    )


def _replay(rules: str) -> Replay:
    replay = Replay(ruleset_from(rules), EngineOptions(timer_grace=timedelta(0)))
    for customer in ("C1", "C2"):
        fields = profile(customer, rm_id="RM7", consent=CONSENT, updated_at="2026-01-01T00:00:00Z")
        replay.profile(CustomerProfile.model_validate(fields))
    return replay


def _drop(customer: str, at: datetime) -> Any:
    return decode_event(json.dumps(drop_off(customer, occurred_at=at.isoformat())).encode())


def _retry_after_a_full_day(rules: str, day: datetime) -> datetime:
    """When C2's call, refused because C1 took the RM's one slot of ``day``, is retried."""
    replay = _replay(rules)
    replay.event(_drop("C1", day))
    replay.event(_drop("C2", day + timedelta(minutes=5)))
    (timer,) = replay.states["C2"].timers
    assert timer.kind == "deferred"
    return timer.due_at


def test_a_full_friday_is_retried_on_monday_morning() -> None:
    friday = datetime(2026, 11, 6, 11, 0, tzinfo=UTC)
    monday_9am_london = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)  # GMT in November
    named = "holidays: {country: GB, subdivision: ENG}"
    assert _retry_after_a_full_day(_rules(named), friday) == monday_9am_london
    # no calendar named: Saturday and Sunday are skipped all the same
    assert _retry_after_a_full_day(_rules(), friday) == monday_9am_london


def test_the_retry_goes_out_on_the_working_day_and_not_before() -> None:
    replay = _replay(_rules("holidays: {country: GB, subdivision: ENG}"))
    christmas_eve = datetime(2024, 12, 24, 11, 0, tzinfo=UTC)  # a Tuesday
    replay.event(_drop("C1", christmas_eve))
    replay.event(_drop("C2", christmas_eve + timedelta(minutes=5)))
    boxing_day = datetime(2024, 12, 26, 12, 0, tzinfo=UTC)
    assert [a for v in replay.advance(boxing_day) for a in v.actions] == []
    friday = replay.advance(datetime(2024, 12, 27, 9, 1, tzinfo=UTC))
    assert [(a.customer_id, a.channel.value) for v in friday for a in v.actions] == [("C2", "rm")]


@pytest.mark.parametrize(
    ("day", "country", "subdivision", "expected"),
    [
        # Christmas Day and Boxing Day, a Wednesday and a Thursday: Friday the 27th
        (date(2024, 12, 24), "GB", "ENG", date(2024, 12, 27)),
        # 2026: Boxing Day falls on a Saturday and is taken on Monday the 28th
        (date(2026, 12, 24), "GB", "ENG", date(2026, 12, 29)),
        # 2 January is a bank holiday in Scotland only
        (date(2025, 12, 31), "GB", "ENG", date(2026, 1, 2)),
        (date(2025, 12, 31), "GB", "SCT", date(2026, 1, 5)),
        # the country's own weekend: Friday and Saturday in Israel
        (date(2026, 11, 5), "IL", None, date(2026, 11, 8)),
        # no calendar: Saturday and Sunday only, Christmas is a working day
        (date(2026, 11, 6), None, None, date(2026, 11, 9)),
        (date(2026, 12, 24), None, None, date(2026, 12, 25)),
    ],
)
def test_the_next_working_day_skips_weekends_and_public_holidays(
    day: date, country: str | None, subdivision: str | None, expected: date
) -> None:
    assert next_working_day(day, country, subdivision) == expected


def test_working_days_are_looked_up_once_per_date() -> None:
    """An RM request is decided on the hot path: a repeated date is a cache hit."""
    next_working_day(date(2027, 3, 1), "GB", "ENG")
    hits, builds = _next_working_day.cache_info().hits, calendar.cache_info().misses
    for _ in range(1000):
        next_working_day(date(2027, 3, 1), "GB", "ENG")
    assert _next_working_day.cache_info().hits == hits + 1000
    assert calendar.cache_info().misses == builds, "the calendar is built once"


def test_an_unknown_country_or_subdivision_is_a_problem_at_its_line() -> None:
    with pytest.raises(RuleFileError) as caught:
        ruleset_from(_rules("holidays: {country: XX}"))
    ((problem),) = caught.value.problems
    assert (problem.file, problem.line) == ("inline.yaml", 8)
    assert "policy, rm_capacity.holidays.country" in problem.message
    assert "no country 'XX'" in problem.message

    with pytest.raises(RuleFileError) as caught:
        ruleset_from(_rules("holidays:\n      country: GB\n      subdivision: Yorkshire"))
    ((problem),) = caught.value.problems
    assert problem.line == 10, "the subdivision's own line"
    assert "GB has no subdivision 'Yorkshire'" in problem.message
    assert "ENG, NIR, SCT, WLS" in problem.message


def test_a_lower_case_country_gets_a_hint() -> None:
    with pytest.raises(HolidayCalendarError, match="did you mean 'GB'"):
        calendar("gb")
