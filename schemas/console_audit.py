"""The console's audit trail: who looked at which customer, when, and what they were shown.

The console's customer page is the only place in Kairos where a person reads one
customer's events, decisions and contacts; banks must be able to say afterwards who looked
and why. Every look-up is written to ``<prefix>.console-audit`` *before* the page shows
anything, so a look-up that could not be audited is never shown (``app/console/audit.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import NonEmptyStr


class ConsoleAudit(BaseModel):
    """One customer look-up on the console, keyed by the customer id it looked up."""

    model_config = ConfigDict(extra="allow", frozen=True)

    audit_id: NonEmptyStr = Field(description="Unique id of this look-up.")
    action: Literal["customer_lookup"] = "customer_lookup"
    who: NonEmptyStr = Field(
        description="The signed-in console user, e.g. 'jane' (users file) or 'jane (token)' "
        "(the shared token, with the name given at sign-in)."
    )
    customer_id: NonEmptyStr = Field(description="The customer looked up; also the key.")
    at: AwareDatetime = Field(description="When the look-up was made (the console's clock).")
    purpose: str = Field(
        default="", max_length=1024, description="Why, as the user wrote it (optional)."
    )
    console: str = Field(default="", description="Which console served it (host:port).")
    schema_version: int = Field(default=1, ge=1)
