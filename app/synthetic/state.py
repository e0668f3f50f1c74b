"""One synthetic customer's state, and the two queues every behaviour writes to.

The behaviours (money, app use, applications) are separate classes over this one state
because they are not independent: they draw from the same seeded ``Random`` in one order, a
card payment depends on the balance a salary left, and an application retry waits for the
session in progress to end. Kept together, the same seed still yields the same traffic,
byte for byte.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from app.synthetic.catalogue import Funnel, Platform
from app.synthetic.config import SyntheticRecord
from schemas.events import CurrencyCode, Event
from schemas.profile import CustomerProfile

DAY: Final = 86_400.0
HOUR: Final = 3_600.0
MINUTE: Final = 60.0

# Episode kinds drawn from each customer's Poisson process.
SESSION, CARD, DEBIT, T_IN, T_OUT, BIG_OUT, FUNNEL, MISC_LOAN = range(8)
# Episode kinds only ever scheduled (never drawn at random).
SALARY, RETRY, DISBURSE = range(8, 11)


class CustomerState:
    """Who the customer is, their money and habits, and the two queues.

    The *agenda* holds future episodes by event time; *pending* holds the records episodes
    produced, by production time (:class:`~app.synthetic.customer.Customer` runs both).
    Every attribute is set by ``Customer.__init__``, in the order its random draws need.
    """

    __slots__ = (
        "agenda",
        "balance",
        "big_out_rate",
        "busy_until",
        "cid",
        "cum_rates",
        "currency",
        "dup_rate",
        "event_ids",
        "funnel_cum",
        "horizon",
        "iban_cc",
        "id_prefix",
        "late_rate",
        "max_late",
        "merchants",
        "offsets",
        "overdraft",
        "pending",
        "platforms",
        "profile",
        "rng",
        "salary",
        "salary_times",
        "screen_cum",
        "seq",
        "sessions",
        "spend_mu",
        "start",
        "start_epoch",
        "tier",
        "total_rate",
        "zone",
    )

    id_prefix: str
    profile: CustomerProfile
    rng: random.Random
    event_ids: Iterator[int]
    cid: str
    tier: str
    currency: CurrencyCode
    start: datetime
    start_epoch: float
    horizon: float
    dup_rate: float
    late_rate: float
    max_late: float
    zone: ZoneInfo
    offsets: dict[int, float]
    iban_cc: str
    merchants: tuple[str, ...]
    agenda: list[tuple[float, int, int, Funnel | None, int]]
    pending: list[tuple[float, int, SyntheticRecord]]
    seq: Iterator[int]
    sessions: int
    busy_until: float
    platforms: tuple[Platform, ...]
    spend_mu: float
    balance: int
    overdraft: int
    salary: int
    screen_cum: tuple[float, ...]
    funnel_cum: tuple[float, ...]
    big_out_rate: float
    cum_rates: tuple[float, ...]
    total_rate: float
    salary_times: Iterator[float]

    def _schedule(self, t: float, kind: int, funnel: Funnel | None = None, number: int = 0) -> None:
        """Put a future episode on the agenda (``number``: attempt, or amount in cents)."""
        heapq.heappush(self.agenda, (t, next(self.seq), kind, funnel, number))

    def _emit(self, t: float, model: Event, occurred_at: datetime) -> None:
        """Queue an event happening at ``t``; maybe deliver it late, maybe twice."""
        if t >= self.horizon:
            return
        rng = self.rng
        at = t
        if self.late_rate and rng.random() < self.late_rate:
            at = t + rng.uniform(1.0, self.max_late)
            record = SyntheticRecord("event", model, self._time(at), "late")
        else:
            record = SyntheticRecord("event", model, occurred_at)
        heapq.heappush(self.pending, (at, next(self.seq), record))
        if self.dup_rate and rng.random() < self.dup_rate:
            again = at + rng.uniform(0.2, 30.0)
            duplicate = SyntheticRecord("event", model, self._time(again), "duplicate")
            heapq.heappush(self.pending, (again, next(self.seq), duplicate))

    def _time(self, t: float) -> datetime:
        """Seconds since start to an aware UTC datetime."""
        return self.start + timedelta(seconds=t)

    def _event_id(self) -> str:
        """Ids come from a counter shared by all customers: unique and reproducible."""
        return f"{self.id_prefix}{next(self.event_ids)}"
