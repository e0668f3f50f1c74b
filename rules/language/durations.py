"""Durations as marketing ops write them: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``.

Every duration is bounded by :data:`MAX_DURATION`: the engine adds durations to event
times (deadlines, cooldowns, windows), and ``999999999d`` loads as a valid ``timedelta``
but overflows ``datetime`` the first time a rule fires. Refusing it in the rule file, with
its line and column, is the only place the mistake is cheap.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

#: Ten years: longer than any campaign, cooldown or goal window we can think of, and far
#: enough from ``datetime.max`` (year 9999) that adding it to any event time is safe.
MAX_DURATION = timedelta(days=3650)

#: More digits than this cannot be under :data:`MAX_DURATION` in any unit (3650d is
#: 315,360,000s: nine digits). Checked before ``int()`` so a 5,000-digit number costs nothing.
_MAX_DIGITS = 9

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TOO_LONG = "at most 3650d (10 years)"


def parse_duration(text: str) -> timedelta:
    """Parse ``<integer><unit>``; raises ``ValueError`` with the accepted forms.

    Only ``ValueError`` ever escapes (pydantic and the loader turn it into a problem with
    a line and column): never ``OverflowError``, whatever the number.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"bad duration {text[:40]!r}: "
            "write a whole number and a unit s, m, h, d or w, e.g. 30m or 7d"
        )
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"duration {text.strip()[:40]!r} is too long: {_TOO_LONG}")
    seconds = int(digits) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()!r} is too long: {_TOO_LONG}")
    return timedelta(seconds=seconds)


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    # A number in YAML (``ttl: 3600``) is seconds to pydantic; one too large for a timedelta
    # would get pydantic's own message, so it gets ours.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and abs(value) > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {value!r} (seconds) is too long: {_TOO_LONG}")
    return value


def _bounded(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if value > MAX_DURATION:
        raise ValueError(f"duration is too long: {_TOO_LONG}")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


DURATION_PATTERN = r"^\s*\d+\s*[smhdw]\s*$"
_JSON_SCHEMA = {"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "7d"]}

#: A pydantic field type: ``30m`` in YAML, a ``timedelta`` in Python, a pattern in JSON Schema.
#: Between 0s and :data:`MAX_DURATION`.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    AfterValidator(_bounded),
    WithJsonSchema(_JSON_SCHEMA),
]

#: A :data:`Duration` that must be longer than 0s: a ``ttl`` of 0s makes every contact
#: "expired", a ``within`` of 0s waits for nothing, a window of 0s counts nothing.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
