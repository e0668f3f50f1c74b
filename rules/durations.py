"""Durations as marketing ops write them: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``<integer><unit>``; raises ``ValueError`` with the accepted forms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"bad duration {text!r}: "
            "write a whole number and a unit s, m, h, d or w, e.g. 30m or 7d"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


DURATION_PATTERN = r"^\s*\d+\s*[smhdw]\s*$"

#: A pydantic field type: ``30m`` in YAML, a ``timedelta`` in Python, a pattern in JSON Schema.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "7d"]}),
]
