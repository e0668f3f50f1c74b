"""Wakes customers whose absence timers are due, by producing a tick to their partition.

The timers themselves live in the customer's state (durable, changelog-backed); this is
only an in-memory index of when to look. It is rebuilt from the local state after every
rebalance or restart, so a timer survives both, and a tick is idempotent — the state
decides whether anything is still due — so duplicate or stale ticks cost nothing.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from rules.engine import fires_at
from schemas.codec import decode_state, encode
from schemas.timers import TimerTick

log = logging.getLogger(__name__)

_HAS_TIMERS = b'"timers":[{'


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

    def rebuild(self, generation: int, records: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Re-index every local customer with a pending timer; returns how many."""
        self._heap = []
        self._kinds = {}
        self._pending = Counter()
        for _, raw in records:
            if raw is None or _HAS_TIMERS not in raw:
                continue
            state = decode_state(raw)
            if state.timers:
                self.note(
                    state.customer_id,
                    min(fires_at(t, self.grace) for t in state.timers),
                    tuple(t.kind for t in state.timers),
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
