"""Customer profile updates: the compacted topic holding the latest profile per customer.

Consent lives here because contact policy must read it on the same partition, in the same
state record, as the events it decides on; a separate lookup would race with withdrawals.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from schemas.events import MAX_COUNT, BankTime, NonEmptyStr, refuse_non_finite_extras


class Consent(BaseModel):
    """Per-channel marketing consent. Absent consent means no: opt-in, never opt-out.

    Only JSON ``true`` and ``false`` count (``StrictBool``): ``"yes"``, ``"Y"``, ``1`` or
    ``"0"`` were once coerced to booleans and an SMS went out on them. A consent is a
    customer's explicit word; anything else is refused to the dead-letter topic.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    sms: StrictBool = False
    push: StrictBool = False
    rm: StrictBool = False

    @model_validator(mode="after")
    def _extra_fields_are_finite(self) -> Consent:
        refuse_non_finite_extras(self)
        return self


class CustomerProfile(BaseModel):
    """The latest known profile of one customer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    customer_id: NonEmptyStr
    updated_at: BankTime
    schema_version: int = Field(default=1, ge=1, le=MAX_COUNT)
    tier: NonEmptyStr = Field(description="e.g. mass, affluent, private")
    tags: Annotated[list[str], Field(max_length=64)] = []
    lifecycle_stage: str = "active"
    consent: Consent = Consent()
    marketing_opt_out: StrictBool = Field(
        default=False, description="Overrides every channel consent: no marketing at all."
    )
    push_enabled: StrictBool = False
    timezone: str = Field(default="UTC", description="IANA name, e.g. Europe/Madrid")
    language: str = "en"
    rm_id: str | None = None
    branch_id: str | None = None

    @model_validator(mode="after")
    def _extra_fields_are_finite(self) -> CustomerProfile:
        """The profile is stored with the customer: see ``refuse_non_finite_extras``."""
        refuse_non_finite_extras(self)
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value
