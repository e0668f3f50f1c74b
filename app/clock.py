"""The worker's decision clock: real time, or a warped simulation clock for the demo.

Production runs on real UTC time. ``kairos demo`` replays a synthetic fortnight in minutes;
for absence waits, cooldowns and expiry to mean the same there, the worker's clock runs at
the same speed as the replayed events: ``origin + (wall - wall_origin) * speed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.settings import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def warped(origin: datetime, wall_origin: float, speed: float) -> Clock:
    """A clock that shows ``origin`` at wall time ``wall_origin`` and runs ``speed`` times fast."""

    def now() -> datetime:
        return origin + timedelta(seconds=(time.time() - wall_origin) * speed)

    return now


def clock_from(settings: Settings) -> Clock:
    """Real time unless the settings ask for a simulation clock."""
    if settings.clock_origin is None:
        return utc_now
    return warped(settings.clock_origin, settings.clock_wall_origin, settings.clock_speed)
