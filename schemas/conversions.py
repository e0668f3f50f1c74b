"""Conversions: a rule's goal reached by a customer it decided on, treated or held out.

Attributing conversions to held-out customers exactly as to contacted ones is what turns
"how many converted" into "how many more converted because we contacted them" — uplift.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.events import NonEmptyStr


class Conversion(BaseModel):
    """The goal event of a decision, within the goal's time."""

    model_config = ConfigDict(extra="allow", frozen=True)

    conversion_id: NonEmptyStr
    customer_id: NonEmptyStr
    rule_id: NonEmptyStr
    rule_version: int
    decision_id: NonEmptyStr
    group: Literal["treated", "holdout"]
    event_id: NonEmptyStr
    converted_at: AwareDatetime
    schema_version: int = 1
