"""One synthetic customer's behaviour over the window, as a lazy, time-ordered stream."""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

from app.synthetic.catalogue import (
    BASE_SCREEN_WEIGHTS,
    FUNNEL_WEIGHTS,
    HOURLY,
    IBAN_PREFIX,
    MEAN_HOURLY,
    MERCHANTS,
    PLATFORMS,
    SCREENS,
    Funnel,
)
from app.synthetic.config import SyntheticConfig, SyntheticRecord
from app.synthetic.funnels import Applications
from app.synthetic.money import Banking
from app.synthetic.state import (
    BIG_OUT,
    CARD,
    DAY,
    DEBIT,
    DISBURSE,
    FUNNEL,
    HOUR,
    MISC_LOAN,
    RETRY,
    SALARY,
    SESSION,
    T_IN,
    T_OUT,
)
from schemas.profile import CustomerProfile

#: What a customer stream yields: production time in seconds since start, and the record
#: (``None`` for a wake-up call at the start of an episode).
Item: TypeAlias = tuple[float, SyntheticRecord | None]


class Customer(Banking, Applications):
    """One customer's behaviour over the window, as a lazy, time-ordered record stream.

    Two queues keep it lazy yet ordered. The *agenda* holds future episodes (the next
    salary, a retry of an abandoned application, a loan payout) by event time; episodes are
    processed in event-time order, so the running balance is always consistent. The
    *pending* heap holds records an episode already produced, by production time; a record
    is released once no later episode can produce anything earlier than it.
    """

    __slots__ = ()

    def __init__(
        self,
        cfg: SyntheticConfig,
        profile: CustomerProfile,
        rng: random.Random,
        event_ids: Iterator[int],
    ) -> None:
        self.id_prefix = f"evt-{cfg.seed}-"
        self.profile = profile
        self.rng = rng
        self.event_ids = event_ids
        self.cid = profile.customer_id
        self.tier = profile.tier
        self.currency = cfg.currency
        self.start = cfg.start.astimezone(UTC)
        self.start_epoch = self.start.timestamp()
        self.horizon = cfg.days * DAY
        self.dup_rate = cfg.duplicate_rate
        self.late_rate = cfg.late_rate
        self.max_late = cfg.max_lateness.total_seconds()
        self.zone = ZoneInfo(profile.timezone)
        self.offsets = {}
        self.iban_cc = IBAN_PREFIX.get(profile.timezone, "ES")
        self.merchants = MERCHANTS.get(profile.timezone, MERCHANTS["Europe/Madrid"])
        self.agenda = []
        self.pending = []
        self.seq = itertools.count()
        self.sessions = 0
        self.busy_until = -1.0

        tags = set(profile.tags)
        tier = self.tier
        student, senior = "student" in tags, "senior" in tags
        digital = "digital_first" in tags

        # Preferences drawn once: people are creatures of habit.
        preferred = rng.choices(PLATFORMS, (0.45, 0.40, 0.15))[0]
        self.platforms = (
            preferred,
            *(p for p in PLATFORMS if p != preferred),
        )
        self.spend_mu = math.log({"mass": 22.0, "affluent": 45.0}.get(tier, 70.0))
        median_balance = {"mass": 2_500.0, "affluent": 60_000.0}.get(tier, 600_000.0)
        self.balance = int(rng.lognormvariate(math.log(median_balance), 0.8) * 100)
        self.overdraft = 30_000 if tier == "mass" else 200_000  # in cents
        if student:
            self.salary = 0
        elif tier == "mass":
            self.salary = int(rng.uniform(1_500, 3_500) * 100)
        elif tier == "affluent":
            self.salary = int(rng.triangular(6_000, 15_000, 12_000) * 100)
        else:
            self.salary = int(rng.uniform(15_000, 60_000) * 100)

        weights = dict(BASE_SCREEN_WEIGHTS)
        if "young_professional" in tags and "homeowner" not in tags:
            weights["mortgage_calculator"] *= 4
        elif "homeowner" in tags:
            weights["mortgage_calculator"] *= 1.5
        if tier != "mass":
            weights["wealth_overview"] *= 5
            weights["investment_funds"] *= 6
        if student:
            weights["mortgage_calculator"] *= 0.2
            weights["savings_goals"] *= 1.5
        if senior:
            weights["mortgage_calculator"] *= 0.2
            weights["settings"] *= 2
        self.screen_cum = tuple(itertools.accumulate(weights[s] for s in SCREENS))
        self.funnel_cum = tuple(itertools.accumulate(FUNNEL_WEIGHTS[tier]))

        stage_factor = {"onboarding": 1.4, "dormant": 0.08}.get(profile.lifecycle_stage, 1.0)
        act = cfg.activity * stage_factor
        session_rate = {"mass": 2.0, "affluent": 2.4}.get(tier, 1.6)
        session_rate *= (1.8 if digital else 1.0) * (0.5 if senior else 1.0)
        card_rate = {"mass": 1.8, "affluent": 2.6}.get(tier, 3.2) * (0.8 if student else 1.0)
        funnel = cfg.funnel_rate * (0.6 if senior else 1.0) * (0.5 if student else 1.0)
        # Large outflows are a churn signal: dormant wealthy customers do it too.
        self.big_out_rate = 0.0 if tier == "mass" else 0.25 * cfg.activity
        rates = (
            session_rate * act,
            card_rate * act,
            0.12 * act,  # direct debits (bills)
            0.20 * act,  # transfers in
            0.25 * act,  # small transfers out
            self.big_out_rate,
            funnel * (0.5 if stage_factor < 1 else 1.0) * cfg.activity,
            0.01 * cfg.activity,  # pre-approved loan drawn without an application
        )
        self.cum_rates = tuple(itertools.accumulate(rates))
        self.total_rate = self.cum_rates[-1]
        self.salary_times = self._pay_times()

    # ------------------------------------------------------------------ scheduling

    def run(self) -> Iterator[Item]:
        """Yield ``(at in seconds since start, record)`` in non-decreasing ``at`` order.

        Before each episode it yields ``(start, None)``, a wake-up call: the merge resumes
        this customer only when simulated time reaches the episode, so records are built
        just before they are due. Built earlier, they would wait in memory for hours of
        simulated time and, once the garbage collector's oldest generation holds millions
        of them, full collections would dominate the run time.
        """
        rng = self.rng
        agenda = self.agenda
        pending = self.pending
        horizon = self.horizon
        first_pay = next(self.salary_times, None)
        if first_pay is not None and self.salary:
            self._schedule(first_pay, SALARY)
        # Thinning: draw candidates at the peak rate, keep them with the hour's intensity.
        peak_rate = self.total_rate / MEAN_HOURLY / DAY
        next_random = self._next_candidate(0.0, peak_rate)
        while True:
            if agenda and agenda[0][0] <= next_random:
                t, _, kind, funnel, number = heapq.heappop(agenda)
            else:
                t, kind, funnel, number = next_random, -1, None, 0
            if t >= horizon:
                break
            while pending and pending[0][0] <= t:
                item = heapq.heappop(pending)
                yield item[0], item[2]
            yield t, None
            if kind == -1:
                kind = bisect.bisect(self.cum_rates, rng.random() * self.total_rate)
                next_random = self._next_candidate(t, peak_rate)
            self._episode(kind, t, funnel, number)
        while pending:
            item = heapq.heappop(pending)
            yield item[0], item[2]

    def _next_candidate(self, t: float, peak_rate: float) -> float:
        """The next accepted random episode after ``t``, or +inf past the window."""
        if peak_rate <= 0:
            return math.inf
        rng = self.rng
        while True:
            t += rng.expovariate(peak_rate)
            if t >= self.horizon:
                return math.inf
            if rng.random() < HOURLY[self._local_hour(t)]:
                return t

    def _local_hour(self, t: float) -> int:
        """The customer's wall-clock hour at ``t``; the UTC offset is cached per day."""
        day = int(t // DAY)
        offset = self.offsets.get(day)
        if offset is None:
            moment = self.start + timedelta(days=day)
            delta = moment.astimezone(self.zone).utcoffset()
            offset = delta.total_seconds() if delta is not None else 0.0
            self.offsets[day] = offset
        return int((self.start_epoch + t + offset) // HOUR) % 24

    # ------------------------------------------------------------------ episodes

    def _episode(self, kind: int, t: float, funnel: Funnel | None, number: int) -> None:
        """Play one episode starting at ``t``; agenda episodes carry a funnel and a number."""
        if kind == SESSION:
            if t >= self.busy_until:
                self._session(t)
        elif kind == CARD:
            self._card_purchase(t)
        elif kind == DEBIT:
            self._direct_debit(t)
        elif kind == T_IN:
            self._transfer_in(t)
        elif kind == T_OUT:
            self._transfer_out(t)
        elif kind == BIG_OUT:
            self._large_outflow(t)
        elif kind == FUNNEL:
            if t >= self.busy_until:
                self._start_application(t)
        elif kind == MISC_LOAN:
            self._preapproved_loan(t)
        elif kind == SALARY:
            self._salary(t)
        elif kind == RETRY and funnel is not None:
            self._retry(t, funnel, number)
        elif kind == DISBURSE:
            self._loan_payout(t, number)
