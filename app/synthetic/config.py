"""What shapes a synthetic run, and what it yields: one record to produce, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import CurrencyCode, Event
from schemas.profile import CustomerProfile

DEFAULT_START: Final = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


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
