"""Timer ticks: internal wake-up calls that make a due absence timer fire.

The scheduler produces a tick to the customer's partition; the agent handles it like any
other input, in order with the customer's events, so firing and cancelling can never race.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.events import NonEmptyStr


class TimerTick(BaseModel):
    """Wake up ``customer_id``: a timer is due at ``due_at`` (duplicates are harmless)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: NonEmptyStr
    due_at: AwareDatetime
