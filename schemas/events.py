"""Input events: the contract producers (mobile app, core banking, funnels) write to.

Every event is self-describing (``event_type``) so that a recorded stream can be replayed
from a single JSONL file, and keyed by ``customer_id`` so the input topics are
co-partitioned with the per-customer state. Unknown extra fields are kept, not rejected:
producers may add fields before Kairos knows them (forward compatibility).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

#: The event types Kairos consumes, and so the names rules trigger on.
EVENT_TYPES: tuple[str, ...] = ("app_click", "transaction", "drop_off")


class EventBase(BaseModel):
    """Fields every input event carries."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: NonEmptyStr = Field(description="Unique id; re-deliveries carry the same id.")
    customer_id: NonEmptyStr = Field(description="Also the Kafka message key.")
    occurred_at: AwareDatetime = Field(description="RFC 3339 with offset, event time.")
    schema_version: int = Field(default=1, ge=1)


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
    amount: Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=4)]
    currency: CurrencyCode
    direction: Literal["credit", "debit"]
    category: NonEmptyStr = Field(
        description="Open set: salary, transfer_out, card_purchase, loan_disbursement, ..."
    )
    counterparty: str | None = None
    balance_after: Decimal | None = None


class DropOff(EventBase):
    """A customer left a multi-step flow (an application funnel) before finishing it."""

    event_type: Literal["drop_off"] = "drop_off"
    flow: NonEmptyStr = Field(description="e.g. personal_loan_application")
    step: int = Field(ge=1, description="The step the customer left at.")
    steps_total: int = Field(ge=1)
    reason: str | None = None


Event: TypeAlias = Annotated[AppClick | Transaction | DropOff, Field(discriminator="event_type")]
EVENT_MODELS: dict[str, type[EventBase]] = {
    "app_click": AppClick,
    "transaction": Transaction,
    "drop_off": DropOff,
}
