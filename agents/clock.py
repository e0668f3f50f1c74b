"""The worker's decision clock: real time, or a warped simulation clock for the demo.

Production runs on real UTC time. ``kairos demo`` replays a synthetic fortnight in minutes;
for absence waits, cooldowns and expiry to mean the same there, the worker's clock runs at
the same speed as the replayed events: ``origin + (wall - wall_origin) * speed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def warped(origin: datetime, wall_origin: float, speed: float) -> Clock:
    """A clock that shows ``origin`` at wall time ``wall_origin`` and runs ``speed`` times fast."""

    def now() -> datetime:
        return origin + timedelta(seconds=(time.time() - wall_origin) * speed)

    return now
