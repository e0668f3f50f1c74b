"""Input events: the contract producers (mobile app, core banking, funnels) write to.

Every event is self-describing (``event_type``) so that a recorded stream can be replayed
from a single JSONL file, and keyed by ``customer_id`` so the input topics are
co-partitioned with the per-customer state. Unknown extra fields are kept, not rejected:
producers may add fields before Kairos knows them (forward compatibility).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import TzInfo

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

#: The instants a bank's event or profile can carry. Outside them the engine's date
#: arithmetic (``occurred_at + ttl``, ``newest - allowed_lateness``) leaves the range of
#: Python's datetime and raises: a click stamped 9999-12-31 once crashed a worker, and then
#: its restart, on the same message. Rule durations are capped well below the margins.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
#: Steps of a funnel and similar counts: a bound no real flow reaches, far below the point
#: where ``float()`` of the number would overflow.
MAX_COUNT = 10_000


#: One shared tzinfo per parsed UTC offset (see :func:`_shared_zone`); bounded, since the
#: offsets come from the input.
_SHARED_ZONES: dict[timedelta | None, tzinfo] = {}
_MAX_SHARED_ZONES = 64


def _shared_zone(value: datetime) -> datetime:
    """``value`` with a shared tzinfo for its fixed offset: the same instant, cheaper to use.

    pydantic gives every parsed timestamp its own ``TzInfo`` object. Two datetimes whose
    tzinfo is not the *same object* are compared and subtracted through ``utcoffset()``
    calls (~0.3 us instead of ~0.01 us), and the engine compares event times dozens of
    times per event (watermarks, windows, timers, caps). Offset zero becomes
    :data:`datetime.UTC`, the zone of every constant the engine compares with; it
    serialises, formats and compares exactly as ``TzInfo(0)``. Only pydantic's fixed-offset
    ``TzInfo`` is replaced: a caller's own zone (a ``ZoneInfo`` with DST) is kept as given.
    """
    zone = value.tzinfo
    if type(zone) is not TzInfo:
        return value
    offset = zone.utcoffset(None)
    if not offset:
        return value.astimezone(UTC)  # the same wall time, at half the cost of replace()
    shared = _SHARED_ZONES.get(offset)
    if shared is None:
        if len(_SHARED_ZONES) >= _MAX_SHARED_ZONES:
            return value
        _SHARED_ZONES[offset] = zone
        return value
    return value.replace(tzinfo=shared)


def _within_bank_time(value: datetime) -> datetime:
    value = _shared_zone(value)
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise ValueError(
            f"must lie between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d} (UTC)"
        )
    return value


#: An aware timestamp within :data:`EARLIEST_INSTANT` .. :data:`LATEST_INSTANT`.
BankTime = Annotated[AwareDatetime, AfterValidator(_within_bank_time)]
#: An amount of money: finite, at most 20 digits of which 4 after the point. ``1e400`` (or
#: 400 digits) once became infinity in a feature, was stored as ``null``, and the customer's
#: next event could not read its own state back.
Money = Annotated[
    Decimal,
    Field(
        max_digits=20,
        decimal_places=4,
        allow_inf_nan=False,
        description="A finite decimal of at most 20 digits, 4 of them after the point.",
    ),
]


def refuse_non_finite_extras(model: BaseModel) -> None:
    """Refuse a model whose kept extra fields hold an infinity or an absurd integer.

    Extra fields are kept (forward compatibility) and stored with the customer: JSON's
    ``1e400`` parses to an infinite float that the state writes as ``null`` and cannot
    read back equal; an integer of 400 digits is no bank's value either.
    """
    extra = model.__pydantic_extra__
    if extra and not _finite(extra):
        raise ValueError("an extra field holds a non-finite or absurdly large number")


def _finite(value: Any) -> bool:
    """Whether ``value`` (a parsed JSON value) holds only finite numbers of sane size."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 10**20
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


#: The event types Kairos consumes, and so the names rules trigger on.
EVENT_TYPES: tuple[str, ...] = ("app_click", "transaction", "drop_off")


def _event_type_is_required(schema: dict[str, Any]) -> None:
    """``event_type`` has a default in Python, but on the wire it is the union's tag.

    Without it a message cannot be told apart from the other event types and is
    dead-lettered, so the published schema must not call it optional.
    """
    required = schema.setdefault("required", [])
    if "event_type" in schema.get("properties", {}) and "event_type" not in required:
        required.insert(0, "event_type")


class EventBase(BaseModel):
    """Fields every input event carries."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_event_type_is_required)

    event_id: NonEmptyStr = Field(description="Unique id; re-deliveries carry the same id.")
    customer_id: NonEmptyStr = Field(description="Also the Kafka message key.")
    occurred_at: BankTime = Field(
        description="RFC 3339 with offset, event time; from 1970 up to (not including) 2200."
    )
    schema_version: int = Field(default=1, ge=1, le=MAX_COUNT)

    @model_validator(mode="after")
    def _extra_fields_are_finite(self) -> EventBase:
        """A pending timer stores its event whole: see :func:`refuse_non_finite_extras`.

        Its test is repeated here, where it runs for every parsed event, to save a call.
        """
        extra = self.__pydantic_extra__
        if extra and not _finite(extra):
            refuse_non_finite_extras(self)
        return self


class AppClick(EventBase):
    """A screen view or tap in the mobile or web banking app."""

    event_type: Literal["app_click"] = "app_click"
    screen: NonEmptyStr = Field(description="e.g. mortgage_calculator")
    element: str | None = None
    session_id: str | None = None
    platform: Literal["ios", "android", "web"]


class Transaction(EventBase):
    """A posted account movement."""

    event_type: Literal["transaction"] = "transaction"
    amount: Annotated[Money, Field(gt=0)]
    currency: CurrencyCode
    direction: Literal["credit", "debit"]
    category: NonEmptyStr = Field(
        description="Open set: salary, transfer_out, card_purchase, loan_disbursement, ..."
    )
    counterparty: str | None = None
    balance_after: Money | None = None


class DropOff(EventBase):
    """A customer left a multi-step flow (an application funnel) before finishing it."""

    event_type: Literal["drop_off"] = "drop_off"
    flow: NonEmptyStr = Field(description="e.g. personal_loan_application")
    step: int = Field(ge=1, le=MAX_COUNT, description="The step the customer left at.")
    steps_total: int = Field(ge=1, le=MAX_COUNT)
    reason: str | None = None


Event: TypeAlias = Annotated[AppClick | Transaction | DropOff, Field(discriminator="event_type")]
EVENT_MODELS: dict[str, type[EventBase]] = {
    "app_click": AppClick,
    "transaction": Transaction,
    "drop_off": DropOff,
}
