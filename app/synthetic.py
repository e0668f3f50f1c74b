"""Seeded synthetic bank customers and their event streams.

Why this exists: Kairos must be demonstrated, load-tested and tested end to end without
real customer data, which a bank will never hand over. The generator therefore has to be:

* believable — tiers, consent, time zones, daily rhythms, salaries, card spend, large
  outflows and application funnels that drop off where real funnels do, so that the
  marketing rules have something meaningful to fire on;
* deterministic — the same :class:`SyntheticConfig` always yields the same records, byte
  for byte, so a demo or a failing test can be replayed exactly;
* lazy and cheap — events come out of a heap merge of per-customer generators, so a run of
  millions of events holds only a few pending records per customer in memory;
* honest about the mess of production — re-deliveries (same ``event_id``), late arrivals
  (produced after their event time) and poison messages are part of the stream.

It imports neither Kafka nor Faust: producing the records is the caller's job.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, Literal, TypeAlias
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import AppClick, CurrencyCode, DropOff, Event, Transaction
from schemas.profile import Consent, CustomerProfile

__all__ = [
    "FUNNELS",
    "SCREENS",
    "SyntheticConfig",
    "SyntheticRecord",
    "generate_profiles",
    "poison_messages",
    "traffic",
]

DEFAULT_START: Final = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
_Platform: TypeAlias = Literal["ios", "android", "web"]
_Direction: TypeAlias = Literal["credit", "debit"]
_PLATFORMS: Final[tuple[_Platform, ...]] = ("ios", "android", "web")

_DAY: Final = 86_400.0
_HOUR: Final = 3_600.0
_MINUTE: Final = 60.0


class SyntheticConfig(BaseModel):
    """Everything that shapes a synthetic run; two equal configs give identical traffic.

    Frozen so a config can be logged, hashed and reused without anyone changing it under a
    running generator.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 42
    customers: int = Field(default=200, ge=1)
    start: AwareDatetime = Field(
        default=DEFAULT_START, description="Simulated time of the first record."
    )
    days: float = Field(default=1.0, gt=0, allow_inf_nan=False, description="Window length.")
    duplicate_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of events re-delivered with the same id."
    )
    late_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of events produced after their event time."
    )
    max_lateness: timedelta = Field(
        default=timedelta(minutes=10),
        ge=timedelta(seconds=1),
        description="Upper bound of how late a late event is produced.",
    )
    activity: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="Multiplies every random behaviour rate; raise it for load tests.",
    )
    funnel_rate: float = Field(
        default=0.6,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Application funnel starts per customer per day. Deliberately dense so that a "
            "one-day demo shows dozens of abandoned applications."
        ),
    )
    currency: CurrencyCode = "EUR"


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    """One thing to produce, and when to produce it in simulated time.

    ``at`` is separate from the event's ``occurred_at`` because producers are not perfect:
    a late event is produced after it happened and a duplicate is produced twice.
    ``anomaly`` says which imperfection this record is, so demos and tests can count them.
    """

    kind: Literal["profile", "event"]
    model: CustomerProfile | Event
    at: datetime
    anomaly: Literal["late", "duplicate"] | None = None


# --------------------------------------------------------------------------- catalogue

#: App screens a session may visit.
SCREENS: Final[tuple[str, ...]] = (
    "home",
    "accounts",
    "cards",
    "transfers",
    "mortgage_calculator",
    "personal_loan_offer",
    "wealth_overview",
    "investment_funds",
    "savings_goals",
    "settings",
)
_BASE_SCREEN_WEIGHTS: Final[dict[str, float]] = {
    "home": 6.0,
    "accounts": 30.0,
    "cards": 14.0,
    "transfers": 16.0,
    "mortgage_calculator": 2.5,
    "personal_loan_offer": 3.5,
    "wealth_overview": 2.0,
    "investment_funds": 1.0,
    "savings_goals": 6.0,
    "settings": 4.0,
}


@dataclass(frozen=True, slots=True)
class _Funnel:
    """An application flow: its steps, where people give up, and how it is entered."""

    name: str
    entry_screen: str
    steps: tuple[str, ...]
    drop_p: tuple[float, ...]  # probability of leaving at each step, given it was reached


#: Application funnels; per-step drop-off shaped after typical bank funnels (document and
#: offer steps lose the most people).
FUNNELS: Final[dict[str, _Funnel]] = {
    f.name: f
    for f in (
        _Funnel(
            "personal_loan_application",
            "personal_loan_offer",
            ("amount_and_term", "personal_details", "income_verification", "offer_review", "sign"),
            (0.10, 0.08, 0.35, 0.30, 0.20),
        ),
        _Funnel(
            "credit_card_application",
            "cards",
            ("card_choice", "personal_details", "income_verification", "sign"),
            (0.15, 0.12, 0.25, 0.10),
        ),
        _Funnel(
            "mortgage_application",
            "mortgage_calculator",
            (
                "property_details",
                "simulation",
                "personal_details",
                "income_documents",
                "valuation_booking",
                "offer_review",
            ),
            (0.20, 0.15, 0.15, 0.35, 0.25, 0.20),
        ),
        _Funnel(
            "wealth_onboarding",
            "wealth_overview",
            ("risk_questionnaire", "suitability_test", "initial_funding"),
            (0.20, 0.30, 0.35),
        ),
    )
}
_FUNNEL_WEIGHTS: Final[dict[str, tuple[float, float, float, float]]] = {
    # personal loan, credit card, mortgage, wealth — in FUNNELS order
    "mass": (0.55, 0.35, 0.08, 0.02),
    "affluent": (0.40, 0.15, 0.25, 0.20),
    "private": (0.35, 0.05, 0.20, 0.40),
}
_FUNNEL_LIST: Final[tuple[_Funnel, ...]] = tuple(FUNNELS.values())

#: (IANA time zone, language, share of customers, IBAN country prefix)
_REGIONS: Final[tuple[tuple[str, str, float, str], ...]] = (
    ("Europe/Madrid", "es", 0.45, "ES"),
    ("Europe/London", "en", 0.15, "GB"),
    ("Europe/Lisbon", "pt", 0.12, "PT"),
    ("Europe/Berlin", "de", 0.13, "DE"),
    ("America/Mexico_City", "es", 0.15, "MX"),
)
_REGION_CUM: Final = tuple(itertools.accumulate(r[2] for r in _REGIONS))
_IBAN_PREFIX: Final = {tz: cc for tz, _, _, cc in _REGIONS}

_MERCHANTS: Final[dict[str, tuple[str, ...]]] = {
    "Europe/Madrid": ("MERCADONA", "EL CORTE INGLES", "ZARA", "CARREFOUR", "REPSOL", "RENFE"),
    "Europe/London": ("TESCO", "SAINSBURYS", "PRET A MANGER", "TFL TRAVEL", "BOOTS", "SHELL"),
    "Europe/Lisbon": ("PINGO DOCE", "CONTINENTE", "GALP", "FNAC", "CP COMBOIOS", "WORTEN"),
    "Europe/Berlin": ("REWE", "EDEKA", "LIDL", "DB BAHN", "DM DROGERIE", "MEDIAMARKT"),
    "America/Mexico_City": ("OXXO", "WALMART MX", "LIVERPOOL", "PEMEX", "SORIANA", "SANBORNS"),
}
_ONLINE_MERCHANTS: Final = ("AMAZON", "NETFLIX", "SPOTIFY", "UBER", "APPLE.COM/BILL", "IKEA")
_BILLERS: Final = ("ELECTRICITY", "WATER", "MOBILE", "INTERNET", "INSURANCE", "GYM")
_EMPLOYERS: Final = (
    "ACME SL",
    "GLOBEX SA",
    "INITECH GMBH",
    "UMBRELLA LTD",
    "HOOLI SA",
    "STARK INDUSTRIES",
    "WAYNE ENTERPRISES",
    "SOYLENT SA",
)
_PEOPLE: Final = (
    "A. GARCIA",
    "M. LOPEZ",
    "J. SMITH",
    "L. SILVA",
    "K. MULLER",
    "R. HERNANDEZ",
    "S. MARTIN",
    "P. COSTA",
    "E. SCHMIDT",
    "C. BROWN",
)

#: Relative activity by local hour: quiet at night, peaks at lunch and in the evening.
_HOURLY: Final[tuple[float, ...]] = (
    0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.20, 0.50, 0.80, 0.90, 0.90, 0.90,
    1.00, 1.00, 0.90, 0.80, 0.80, 0.90, 1.00, 1.00, 0.90, 0.70, 0.40, 0.15,
)  # fmt: skip
_MEAN_HOURLY: Final = sum(_HOURLY) / 24

# Episode kinds drawn from each customer's Poisson process.
_SESSION, _CARD, _DEBIT, _T_IN, _T_OUT, _BIG_OUT, _FUNNEL, _MISC_LOAN = range(8)
# Episode kinds only ever scheduled (never drawn at random).
_SALARY, _RETRY, _DISBURSE = range(8, 11)

_REASON_BY_STEP: Final[dict[str, tuple[tuple[str, ...], tuple[float, ...]]]] = {
    "documents": (("document_upload_failed", "timeout", "closed_app"), (0.5, 0.75, 1.0)),
    "offer": (("offer_declined", "closed_app", "timeout"), (0.4, 0.7, 1.0)),
    "other": (("closed_app", "timeout", "identity_check_failed"), (0.55, 0.92, 1.0)),
}
_DOCUMENT_STEPS: Final = frozenset({"income_verification", "income_documents", "initial_funding"})
_OFFER_STEPS: Final = frozenset({"offer_review", "simulation", "card_choice"})


# --------------------------------------------------------------------------- profiles


def generate_profiles(config: SyntheticConfig) -> list[CustomerProfile]:
    """Create the customer base: one profile per customer, ids ``C000001`` upwards.

    Tiers are stratified (exactly ~80/17/3 % after rounding, then shuffled) rather than
    drawn independently, so every seed has the same mix and demo counts do not swing with
    the seed.

    Args:
        config: Run settings; only ``seed``, ``customers`` and ``start`` matter here.

    Returns:
        The profiles, ordered by customer id.

    """
    rng = random.Random(config.seed)
    n = config.customers
    n_private = round(n * 0.03)
    n_affluent = round(n * 0.17)
    tiers = ["private"] * n_private + ["affluent"] * n_affluent
    tiers += ["mass"] * (n - len(tiers))
    rng.shuffle(tiers)
    updated_at = config.start.astimezone(UTC)
    return [_make_profile(rng, i + 1, tier, updated_at) for i, tier in enumerate(tiers)]


def _make_profile(
    rng: random.Random, number: int, tier: str, updated_at: datetime
) -> CustomerProfile:
    """Draw one believable profile; attributes are correlated the way they are in real life."""
    region = _REGIONS[bisect.bisect(_REGION_CUM, rng.random() * _REGION_CUM[-1])]
    timezone, language = region[0], region[1]
    if rng.random() < 0.06:  # expats and people who simply prefer English
        language = "en"
    mass = tier == "mass"
    student = mass and rng.random() < 0.12
    senior = not student and rng.random() < {"mass": 0.16, "affluent": 0.14}.get(tier, 0.22)
    tags: list[str] = []
    if student:
        tags.append("student")
    if senior:
        tags.append("senior")
    if not student and not senior and rng.random() < 0.40:
        tags.append("young_professional")
    if not student and rng.random() < {"mass": 0.30, "affluent": 0.60}.get(tier, 0.85):
        tags.append("homeowner")
    if rng.random() < (0.75 if student else 0.10 if senior else 0.45):
        tags.append("digital_first")
    if not mass and rng.random() < (0.10 if tier == "affluent" else 0.40):
        tags.append("business_owner")

    roll = rng.random()
    stage = "onboarding" if roll < 0.08 else "dormant" if roll < 0.18 else "active"
    consent = Consent(
        sms=rng.random() < 0.70,
        push=rng.random() < 0.60,
        rm=not mass and rng.random() < 0.90,
    )
    return CustomerProfile(
        customer_id=f"C{number:06d}",
        updated_at=updated_at,
        tier=tier,
        tags=tags,
        lifecycle_stage=stage,
        consent=consent,
        marketing_opt_out=rng.random() < 0.05,
        push_enabled=rng.random() < (0.85 if "digital_first" in tags else 0.50),
        timezone=timezone,
        language=language,
        rm_id=None if mass else f"RM{rng.randint(1, 60):03d}",
        branch_id=None if mass else f"BR{rng.randint(1, 25):03d}",
    )


# --------------------------------------------------------------------------- traffic

#: What a customer stream yields: production time in seconds since start, and the record
#: (``None`` for a wake-up call at the start of an episode).
_Item: TypeAlias = tuple[float, SyntheticRecord | None]


def traffic(config: SyntheticConfig) -> Iterator[SyntheticRecord]:
    """Yield every profile, then every event, in non-decreasing ``at`` order.

    Each customer is an independent generator with its own seeded ``Random``, and a heap
    merges them lazily: memory grows with the number of customers, not of events.

    Args:
        config: Run settings.

    Yields:
        Profiles first (``at == config.start``), then events, duplicates and late arrivals.

    """
    profiles = generate_profiles(config)
    start = config.start.astimezone(UTC)
    for profile in profiles:
        yield SyntheticRecord("profile", profile, start)

    ids = itertools.count(1)
    heap: list[tuple[float, int, SyntheticRecord | None, Iterator[_Item]]] = []
    for index, profile in enumerate(profiles):
        rng = random.Random(f"kairos-synthetic:{config.seed}:{profile.customer_id}")
        stream = _Customer(config, profile, rng, ids).run()
        first = next(stream, None)
        if first is not None:
            heap.append((first[0], index, first[1], stream))
    del profiles
    heapq.heapify(heap)
    while heap:
        at, index, record, stream = heap[0]
        # Run ahead on this customer while it stays the earliest: no heap work at all.
        size = len(heap)
        runner_up = (
            math.inf if size == 1 else heap[1][0] if size == 2 else min(heap[1][0], heap[2][0])
        )
        while True:
            if record is not None:
                yield record
            following = next(stream, None)
            if following is None:
                heapq.heappop(heap)
                break
            at, record = following
            if at > runner_up:
                heapq.heapreplace(heap, (at, index, record, stream))
                break


class _Customer:
    """One customer's behaviour over the window, as a lazy, time-ordered record stream.

    Two queues keep it lazy yet ordered. The *agenda* holds future episodes (the next
    salary, a retry of an abandoned application, a loan payout) by event time; episodes are
    processed in event-time order, so the running balance is always consistent. The
    *pending* heap holds records an episode already produced, by production time; a record
    is released once no later episode can produce anything earlier than it.
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
        self.horizon = cfg.days * _DAY
        self.dup_rate = cfg.duplicate_rate
        self.late_rate = cfg.late_rate
        self.max_late = cfg.max_lateness.total_seconds()
        self.zone = ZoneInfo(profile.timezone)
        self.offsets: dict[int, float] = {}
        self.iban_cc = _IBAN_PREFIX.get(profile.timezone, "ES")
        self.merchants = _MERCHANTS.get(profile.timezone, _MERCHANTS["Europe/Madrid"])
        self.agenda: list[tuple[float, int, int, _Funnel | None, int]] = []
        self.pending: list[tuple[float, int, SyntheticRecord]] = []
        self.seq = itertools.count()
        self.sessions = 0
        self.busy_until = -1.0

        tags = set(profile.tags)
        tier = self.tier
        student, senior = "student" in tags, "senior" in tags
        digital = "digital_first" in tags

        # Preferences drawn once: people are creatures of habit.
        preferred = rng.choices(_PLATFORMS, (0.45, 0.40, 0.15))[0]
        self.platforms: tuple[_Platform, ...] = (
            preferred,
            *(p for p in _PLATFORMS if p != preferred),
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

        weights = dict(_BASE_SCREEN_WEIGHTS)
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
        self.funnel_cum = tuple(itertools.accumulate(_FUNNEL_WEIGHTS[tier]))

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

    def run(self) -> Iterator[_Item]:
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
            self._schedule(first_pay, _SALARY)
        # Thinning: draw candidates at the peak rate, keep them with the hour's intensity.
        peak_rate = self.total_rate / _MEAN_HOURLY / _DAY
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
            if rng.random() < _HOURLY[self._local_hour(t)]:
                return t

    def _local_hour(self, t: float) -> int:
        """The customer's wall-clock hour at ``t``; the UTC offset is cached per day."""
        day = int(t // _DAY)
        offset = self.offsets.get(day)
        if offset is None:
            moment = self.start + timedelta(days=day)
            delta = moment.astimezone(self.zone).utcoffset()
            offset = delta.total_seconds() if delta is not None else 0.0
            self.offsets[day] = offset
        return int((self.start_epoch + t + offset) // _HOUR) % 24

    def _schedule(
        self, t: float, kind: int, funnel: _Funnel | None = None, number: int = 0
    ) -> None:
        """Put a future episode on the agenda (``number``: attempt, or amount in cents)."""
        heapq.heappush(self.agenda, (t, next(self.seq), kind, funnel, number))

    def _pay_times(self) -> Iterator[float]:
        """Salary moments in seconds since start.

        Windows shorter than a month get exactly one pay moment, uniform in the window, so a
        one-day demo still sees salaries; longer windows follow the calendar (pay day 24-28,
        early morning local time, as payroll batches are).
        """
        rng = self.rng
        if self.horizon < 30 * _DAY:
            yield rng.uniform(0.0, self.horizon)
            return
        pay_day = rng.randint(24, 28)
        hour = rng.randint(4, 7)
        local = self.start.astimezone(self.zone)
        year, month = local.year, local.month
        while True:
            moment = datetime(year, month, pay_day, hour, tzinfo=self.zone)
            offset = (moment - self.start).total_seconds() + rng.uniform(0, _HOUR)
            if offset >= self.horizon:
                return
            if offset >= 0:
                yield offset
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    # ------------------------------------------------------------------ output

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

    def _click(
        self,
        t: float,
        screen: str,
        session_id: str,
        platform: _Platform,
        element: str | None = None,
    ) -> None:
        """Queue an app screen view."""
        occurred_at = self._time(t)
        click = AppClick(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            screen=screen,
            element=element,
            session_id=session_id,
            platform=platform,
        )
        self._emit(t, click, occurred_at)

    def _transaction(
        self, t: float, cents: int, direction: _Direction, category: str, counterparty: str
    ) -> None:
        """Post a movement: update the running balance and queue the event."""
        self.balance += cents if direction == "credit" else -cents
        occurred_at = self._time(t)
        transaction = Transaction(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            amount=Decimal(cents).scaleb(-2),
            currency=self.currency,
            direction=direction,
            category=category,
            counterparty=counterparty,
            balance_after=Decimal(self.balance).scaleb(-2),
        )
        self._emit(t, transaction, occurred_at)

    def _can_pay(self, cents: int) -> bool:
        """A debit beyond the overdraft limit is declined and never posted."""
        return cents <= self.balance + self.overdraft

    # ------------------------------------------------------------------ episodes

    def _episode(self, kind: int, t: float, funnel: _Funnel | None, number: int) -> None:
        """Play one episode starting at ``t``; agenda episodes carry a funnel and a number."""
        rng = self.rng
        if kind == _SESSION:
            if t >= self.busy_until:
                self._session(t)
        elif kind == _CARD:
            online = rng.random() < 0.3
            merchant = rng.choice(_ONLINE_MERCHANTS if online else self.merchants)
            cents = max(50, int(rng.lognormvariate(self.spend_mu, 0.9) * 100))
            cents = min(cents, 250_000)
            if self._can_pay(cents):
                self._transaction(t, cents, "debit", "card_purchase", merchant)
        elif kind == _DEBIT:
            cents = int(rng.uniform(15, 180) * 100)
            if self._can_pay(cents):
                biller = f"DIRECT DEBIT {rng.choice(_BILLERS)}"
                self._transaction(t, cents, "debit", "direct_debit", biller)
        elif kind == _T_IN:
            cents = int(rng.lognormvariate(math.log(150), 1.0) * 100) + 100
            self._transaction(t, cents, "credit", "transfer_in", f"FROM {rng.choice(_PEOPLE)}")
        elif kind == _T_OUT:
            cents = int(rng.lognormvariate(math.log(120), 1.0) * 100) + 100
            if self._can_pay(cents):
                who = f"TO {rng.choice(_PEOPLE)}"
                self._transaction(t, cents, "debit", "transfer_out", who)
        elif kind == _BIG_OUT:
            ceiling = min(50_000.0, 0.9 * self.balance / 100)
            if ceiling >= 5_000:
                cents = int(rng.uniform(5_000, ceiling) * 100)
                self._transaction(t, cents, "debit", "transfer_out", self._other_bank())
        elif kind == _FUNNEL:
            if t >= self.busy_until:
                index = bisect.bisect(self.funnel_cum, rng.random() * self.funnel_cum[-1])
                self._funnel(t, _FUNNEL_LIST[index], attempt=1)
        elif kind == _MISC_LOAN:
            cents = int(rng.uniform(1_000, 6_000) * 100)
            self._transaction(t, cents, "credit", "loan_disbursement", "PRE-APPROVED LOAN")
        elif kind == _SALARY:
            self._salary(t)
        elif kind == _RETRY and funnel is not None:
            if t < self.busy_until:  # still in another flow: come back once it is done
                later = self.busy_until + rng.uniform(60, 900)
                self._schedule(later, _RETRY, funnel, number)
            else:
                self._funnel(t, funnel, attempt=number)
        elif kind == _DISBURSE:
            self._transaction(t, number, "credit", "loan_disbursement", "PERSONAL LOAN")

    def _salary(self, t: float) -> None:
        """Pay this month's salary (with a little variation) and book the next one."""
        rng = self.rng
        cents = int(self.salary * rng.uniform(0.97, 1.03))
        senior = "senior" in self.profile.tags
        payer = "PENSION FUND" if senior else rng.choice(_EMPLOYERS)
        label = "NOMINA" if self.profile.language == "es" else "SALARY"
        self._transaction(t, cents, "credit", "salary", f"{label} {payer}")
        following = next(self.salary_times, None)
        if following is not None:
            self._schedule(following, _SALARY)

    def _other_bank(self) -> str:
        """A plausible IBAN at another bank (digits random, not checksum-valid)."""
        digits = "".join(str(self.rng.randrange(10)) for _ in range(20))
        groups = " ".join(digits[i : i + 4] for i in range(0, 20, 4))
        return f"OTHERBANK {self.iban_cc}{self.rng.randint(10, 99)} {groups}"

    def _new_session(self) -> tuple[str, _Platform]:
        """A fresh session id and the platform it runs on (usually the favourite one)."""
        self.sessions += 1
        session_id = f"ses-{self.cid}-{self.sessions}"
        roll = self.rng.random()
        platform = self.platforms[0 if roll < 0.85 else 1 if roll < 0.95 else 2]
        return session_id, platform

    def _session(self, t: float) -> None:
        """Browse a few screens; most sessions open on home."""
        rng = self.rng
        session_id, platform = self._new_session()
        count = 1 + min(int(rng.expovariate(0.4)), 11)
        screens = rng.choices(SCREENS, cum_weights=self.screen_cum, k=count)
        if rng.random() < 0.8:
            screens[0] = "home"
        for screen in screens:
            self._click(t, screen, session_id, platform)
            t += 4.0 + rng.expovariate(1 / 25)
        self.busy_until = t

    def _funnel(self, t: float, funnel: _Funnel, attempt: int) -> None:
        """Walk an application funnel until the customer gives up or completes it."""
        rng = self.rng
        session_id, platform = self._new_session()
        self._click(t, funnel.entry_screen, session_id, platform, "apply")
        total = len(funnel.steps)
        for step, (name, drop_p) in enumerate(zip(funnel.steps, funnel.drop_p, strict=True), 1):
            slow = name in _DOCUMENT_STEPS
            t += 15.0 + rng.expovariate(1 / (240.0 if slow else 70.0))
            self._click(t, funnel.name, session_id, platform, name)
            if rng.random() < drop_p:
                self._drop_off(t, funnel, step, total, name, attempt)
                return
        t += 5.0 + rng.expovariate(1 / 20)
        self._click(t, f"{funnel.name}_completed", session_id, platform, "submitted")
        self.busy_until = t
        if funnel.name == "personal_loan_application":
            low, high = {"mass": (3_000, 25_000), "affluent": (10_000, 60_000)}.get(
                self.tier, (20_000, 90_000)
            )
            cents = int(rng.uniform(low, high) / 100) * 10_000  # loans are round amounts
            self._schedule(t + rng.uniform(10 * _MINUTE, 6 * _HOUR), _DISBURSE, number=cents)

    def _drop_off(
        self, t: float, funnel: _Funnel, step: int, total: int, step_name: str, attempt: int
    ) -> None:
        """Leave the funnel at ``step``; some customers come back later and try again."""
        rng = self.rng
        group = (
            "documents"
            if step_name in _DOCUMENT_STEPS
            else "offer"
            if step_name in _OFFER_STEPS
            else "other"
        )
        reasons, cum = _REASON_BY_STEP[group]
        reason = reasons[bisect.bisect(cum, rng.random() * cum[-1])]
        # A timeout is only noticed when the session expires; the others are immediate.
        t += rng.uniform(15 * _MINUTE, 30 * _MINUTE) if reason == "timeout" else rng.uniform(5, 90)
        occurred_at = self._time(t)
        drop = DropOff(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            flow=funnel.name,
            step=step,
            steps_total=total,
            reason=reason,
        )
        self._emit(t, drop, occurred_at)
        self.busy_until = t
        if attempt < 3 and rng.random() < 0.3:
            self._schedule(t + rng.uniform(30 * _MINUTE, 8 * _HOUR), _RETRY, funnel, attempt + 1)


# --------------------------------------------------------------------------- poison


def poison_messages(rng: random.Random) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield ``(key, raw value)`` messages that Kairos must dead-letter, never process.

    Why: the dead-letter path is only trustworthy if the demo exercises it with the
    failures real producers make. One message of each kind, in this order, with the
    ``error_type`` that ``schemas.codec.decode_event`` reports:

    1. truncated JSON (``malformed_json``), sent without a key;
    2. an app click without ``customer_id`` (``missing_field``);
    3. a transaction whose amount is ``"lots"`` (``invalid_field``);
    4. an ``atm_withdrawal``, an event type Kairos does not know (``unknown_event_type``);
    5. an event without ``event_type`` (``missing_event_type``);
    6. a valid event keyed by another customer (``key_mismatch``).

    Args:
        rng: Source of the ids and timestamps; the same state yields the same messages.

    Yields:
        Kafka key (or ``None``) and value bytes.

    """
    number = rng.randint(1, 999_999)
    customer = f"C{number:06d}"
    key = customer.encode()
    when = (DEFAULT_START + timedelta(seconds=rng.randrange(86_400))).isoformat()

    def event_id() -> str:
        return f"evt-poison-{rng.randrange(10**9):09d}"

    def dump(value: Mapping[str, object]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    click = {
        "event_type": "app_click",
        "event_id": event_id(),
        "customer_id": customer,
        "occurred_at": when,
        "screen": "home",
        "platform": "ios",
    }
    yield None, dump(click)[: -rng.randint(5, 20)]
    yield key, dump({k: v for k, v in click.items() if k != "customer_id"})
    yield (
        key,
        dump(
            {
                "event_type": "transaction",
                "event_id": event_id(),
                "customer_id": customer,
                "occurred_at": when,
                "amount": "lots",
                "currency": "EUR",
                "direction": "debit",
                "category": "card_purchase",
            }
        ),
    )
    yield (
        key,
        dump(
            {
                "event_type": "atm_withdrawal",
                "event_id": event_id(),
                "customer_id": customer,
                "occurred_at": when,
                "amount": "60.00",
                "currency": "EUR",
            }
        ),
    )
    yield (
        key,
        dump({k: v for k, v in click.items() if k != "event_type"} | {"event_id": event_id()}),
    )
    other = f"C{(number % 999_999) + 1:06d}".encode()
    yield other, dump(click | {"event_id": event_id()})
