"""The RMs' working days: weekends and public holidays, from the ``holidays`` library.

An RM contact that waits for "the next day" (``rm_when_full: next_day``) must go out on a
day the RM works: retried on a Saturday or on Boxing Day it would land in an empty office,
and count against a day's capacity that nobody uses. Calendars are the ``holidays``
library's (a country, and a subdivision where holidays differ by region), never a list
kept by hand: they follow each country's rules, observed days included (a Boxing Day on a
Saturday is taken on the Monday), and the library's weekend for the country (Friday and
Saturday in some). Without a calendar, the weekend is Saturday and Sunday.

Both lookups are cached: a calendar is built once per country and subdivision, and the
next working day once per date, so an RM request on the hot path costs a dictionary hit.
"""

from __future__ import annotations

import difflib
from datetime import date, timedelta
from functools import lru_cache

import holidays

from rules.errors import HolidayCalendarError

#: ``date.weekday()`` of Saturday and Sunday: the weekend when no calendar is named.
SATURDAY_SUNDAY = frozenset({5, 6})


def next_working_day(day: date, country: str | None = None, subdivision: str | None = None) -> date:
    """The first working day after ``day`` (a local date), for the calendar named.

    Raises:
        HolidayCalendarError: the library has no calendar for ``country`` / ``subdivision``
            (the policy model checks this at load, so a loaded ruleset never raises here).

    """
    return _next_working_day(day, country, subdivision)


@lru_cache(maxsize=4096)
def _next_working_day(day: date, country: str | None, subdivision: str | None) -> date:
    if country is None:
        following = day + timedelta(days=1)
        while following.weekday() in SATURDAY_SUNDAY:
            following += timedelta(days=1)
        return following
    return calendar(country, subdivision).get_nth_working_day(day, 1)


@lru_cache(maxsize=64)
def calendar(country: str, subdivision: str | None = None) -> holidays.HolidayBase:
    """The library's public holidays for ``country`` (ISO 3166-1 alpha-2) and subdivision.

    Raises:
        HolidayCalendarError: no such country, or no such subdivision of it; the message
            says what the library has instead.

    """
    supported = _supported()
    if country not in supported:
        close = difflib.get_close_matches(country.upper(), supported, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "e.g. GB, ES, DE, US"
        raise HolidayCalendarError(
            f"the holidays library has no country {country!r}: write its ISO 3166-1 "
            f"alpha-2 code ({hint})"
        )
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:  # how the library refuses an unknown subdivision
        known = ", ".join(supported[country]) or "none: leave subdivision out"
        raise HolidayCalendarError(
            f"{country} has no subdivision {subdivision!r} in the holidays library; one of: {known}"
        ) from None


@lru_cache(maxsize=1)
def _supported() -> dict[str, list[str]]:
    """Country codes (aliases such as UK included) and their subdivisions' codes."""
    return holidays.list_supported_countries()
