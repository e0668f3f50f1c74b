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

    sms: StrictBool = Field(default=False, description="Marketing by SMS allowed.")
    push: StrictBool = Field(default=False, description="Marketing by app push allowed.")
    rm: StrictBool = Field(
        default=False, description="Contact by the relationship manager (or branch) allowed."
    )

    @model_validator(mode="after")
    def _extra_fields_are_finite(self) -> Consent:
        refuse_non_finite_extras(self)
        return self


class CustomerProfile(BaseModel):
    """The latest known profile of one customer.

    The README's profile table documents these fields for producers, and
    ``tests/schemas/test_profile_contract_docs.py`` holds it to them.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    customer_id: NonEmptyStr = Field(description="Also the Kafka message key.")
    updated_at: BankTime = Field(
        description="When the bank last changed the profile, RFC 3339 with offset. A profile "
        "replaces the stored one only if it is newer: an older one is ignored, an equal one is "
        "a re-delivery (the stored one, with any unsubscribe reported since, is kept)."
    )
    schema_version: int = Field(
        default=1, ge=1, le=MAX_COUNT, description="The record format's version; 1 today."
    )
    tier: NonEmptyStr = Field(description="e.g. mass, affluent, private")
    tags: Annotated[list[str], Field(max_length=64)] = Field(
        default=[], description="Free labels rules can test, e.g. homeowner, digital_first."
    )
    lifecycle_stage: str = Field(default="active", description="e.g. onboarding, active, dormant")
    consent: Consent = Field(
        default=Consent(),
        description="Per-channel marketing consent. Absent, or a channel absent from it, means "
        "no: every contact on that channel is suppressed as no_consent.",
    )
    marketing_opt_out: StrictBool = Field(
        default=False, description="Overrides every channel consent: no marketing at all."
    )
    push_enabled: StrictBool = Field(
        default=False, description="Notifications enabled on the device; push needs it."
    )
    timezone: str = Field(
        default="UTC",
        description="IANA name, e.g. Europe/Madrid: quiet hours and daily or weekly caps are "
        "the customer's local time.",
    )
    language: str = Field(default="en", description="e.g. es; rules can test it.")
    rm_id: str | None = Field(
        default=None, description="The relationship manager; the rm channel needs it or a branch."
    )
    branch_id: str | None = Field(
        default=None, description="The branch; RM capacity may be counted per branch."
    )

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
