"""Customer profile updates: the compacted topic holding the latest profile per customer.

Consent lives here because contact policy must read it on the same partition, in the same
state record, as the events it decides on; a separate lookup would race with withdrawals.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.events import NonEmptyStr


class Consent(BaseModel):
    """Per-channel marketing consent. Absent consent means no: opt-in, never opt-out."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sms: bool = False
    push: bool = False
    rm: bool = False


class CustomerProfile(BaseModel):
    """The latest known profile of one customer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    customer_id: NonEmptyStr
    updated_at: AwareDatetime
    schema_version: int = Field(default=1, ge=1)
    tier: NonEmptyStr = Field(description="e.g. mass, affluent, private")
    tags: Annotated[list[str], Field(max_length=64)] = []
    lifecycle_stage: str = "active"
    consent: Consent = Consent()
    marketing_opt_out: bool = Field(
        default=False, description="Overrides every channel consent: no marketing at all."
    )
    push_enabled: bool = False
    timezone: str = Field(default="UTC", description="IANA name, e.g. Europe/Madrid")
    language: str = "en"
    rm_id: str | None = None
    branch_id: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value
