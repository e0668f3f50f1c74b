"""Wakes customers whose absence timers are due, by producing a tick to their partition.

The timers themselves live in the customer's state (durable, changelog-backed); this is
only an in-memory index of when to look. It is rebuilt from the local state after every
rebalance or restart, so a timer survives both, and a tick is idempotent — the state
decides whether anything is still due — so duplicate or stale ticks cost nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

from rules.engine import fires_at
from schemas.codec import encode, state_json
from schemas.state import TimerKind
from schemas.timers import TimerTick

log = logging.getLogger(__name__)

_HAS_TIMERS = b'"timers":[{'
#: Records scanned between two yields to the event loop during a rebuild: a million
#: customers took the worker off the air for 29 s when scanned in one go.
_SCAN_SLICE = 2_000


class _TimerDue(BaseModel):
    """What the index needs of a stored timer: when, and what kind (not its whole event)."""

    model_config = ConfigDict(extra="ignore")

    due_at: AwareDatetime
    kind: TimerKind = "absence"


_TIMERS = TypeAdapter(list[_TimerDue])


def _pending_timers(document: bytes) -> list[_TimerDue]:
    """Just the ``timers`` of a state's JSON: a full decode of every state costs too much."""
    timers: object = json.loads(document).get("timers", [])
    return _TIMERS.validate_python(timers)


class TimerIndex:
    """A min-heap of (wake-up time, customer id); may hold stale entries, never misses one.

    Alongside it, the kinds of timer each customer has pending, so the worker can say how
    many absence waits and deferred contacts it holds. ``grace`` is only needed to re-derive
    wake-up times from stored timers on a rebuild.
    """

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace
        self._heap: list[tuple[datetime, str]] = []
        self._kinds: dict[str, tuple[str, ...]] = {}
        self._pending: Counter[str] = Counter()
        self.generation: int | None = None

    def __len__(self) -> int:
        """Customers with at least one pending timer."""
        return len(self._kinds)

    def pending_by_kind(self) -> dict[str, int]:
        """Pending timers on this worker by kind (absence, deferred, window)."""
        return {kind: n for kind, n in self._pending.items() if n > 0}

    def note(self, customer_id: str, due_at: datetime | None, kinds: tuple[str, ...]) -> None:
        """Record a customer's timers after a change; ``due_at`` None means none are left."""
        self._pending.subtract(self._kinds.pop(customer_id, ()))
        if due_at is None:
            return
        self._kinds[customer_id] = kinds
        self._pending.update(kinds)
        heapq.heappush(self._heap, (due_at, customer_id))

    async def rebuild(
        self,
        generation: int,
        records: Iterable[tuple[bytes, bytes | None]],
        still_current: Callable[[], bool] = lambda: True,
    ) -> int | None:
        """Re-index every local customer with a pending timer; how many, or None if abandoned.

        Scans in slices, yielding between them, so the worker keeps consuming and answering
        while a large table is scanned; gives up (to start over on the next tick) when
        ``still_current`` says a rebalance has made the scan stale. Only records whose JSON
        holds a timer are decoded, and only their timers.
        """
        self._heap = []
        self._kinds = {}
        self._pending = Counter()
        for scanned, (key, raw) in enumerate(records, start=1):
            if scanned % _SCAN_SLICE == 0:
                await asyncio.sleep(0)
                if not still_current():
                    return None
            if raw is None:
                continue
            document = state_json(raw)
            if _HAS_TIMERS not in document:
                continue
            timers = _pending_timers(document)
            if timers:
                self.note(
                    key.decode(),
                    min(fires_at(t, self.grace) for t in timers),
                    tuple(t.kind for t in timers),
                )
        self.generation = generation
        return len(self._kinds)

    def pop_due(self, now: datetime) -> list[TimerTick]:
        """Ticks for every customer with a timer to fire by ``now``."""
        ticks: dict[str, TimerTick] = {}
        while self._heap and self._heap[0][0] <= now:
            due_at, customer_id = heapq.heappop(self._heap)
            ticks.setdefault(customer_id, TimerTick(customer_id=customer_id, due_at=due_at))
        return list(ticks.values())


def tick_message(tick: TimerTick) -> tuple[bytes, bytes]:
    """Key and value of a tick: keyed by customer, so it lands on the customer's partition."""
    return tick.customer_id.encode(), encode(tick)
