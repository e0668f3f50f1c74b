"""RM capacity: requests from customer partitions to the partition that owns an RM's day.

A relationship manager's daily capacity is shared by customers on every partition, so it
cannot live in any one customer's state. RM contacts are sent as requests keyed by the RM
(or branch); the capacity agent owning that key grants them — emitting the action — or
answers the customer's partition that the day is full, which then falls back to the rule's
next channel or retries the next working day.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.actions import Action
from schemas.decisions import Decision
from schemas.events import Event, NonEmptyStr

WhenFull = Literal["next_channel", "next_day"]


class RmRequest(BaseModel):
    """An RM contact decided for a customer, pending the RM's capacity for the day."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    capacity_key: NonEmptyStr  # "rm:RM007" or "branch:BR01"
    day: str  # the RM's local date, ISO
    daily_limit: int
    when_full: WhenFull
    retry_at: AwareDatetime  # for next_day: when the next working day opens
    #: When the contact was due before it queued (its event's time, or its timer's), so the
    #: granting worker can tell how late it leaves; absent from an older worker's requests.
    due_at: AwareDatetime | None = None
    action: Action
    decision: Decision  # the "sent" decision to record if granted
    start_event: Event


class RmReply(BaseModel):
    """The RM's day was full: the customer's partition decides what happens instead."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: NonEmptyStr
    rule_id: NonEmptyStr
    capacity_key: NonEmptyStr
    day: str
    when_full: WhenFull
    retry_at: AwareDatetime
    due_at: AwareDatetime | None = None  # the request's, for a fallback contact's lateness
    #: The refused "sent" decision, which the customer's state recorded when it asked and
    #: must forget now; absent from an older worker's replies.
    decision_id: str | None = None
    start_event: Event
