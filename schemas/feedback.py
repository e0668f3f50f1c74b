"""Channel feedback: what became of an action, as the channel system that carried it saw it.

SMS gateways, the push service and the RM desk report on ``<prefix>.feedback``, keyed and
co-partitioned by ``customer_id`` like every input, so a customer's feedback meets their
state (and their contact history) on one worker. Each record names the ``action_id`` it is
about and carries its own ``feedback_id``: a channel system that re-sends a report re-sends
the same id, and Kairos applies it once.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.actions import Channel
from schemas.events import MAX_COUNT, BankTime, NonEmptyStr
from schemas.ids import fingerprint
from schemas.wire_enum import WireEnum


class FeedbackStatus(WireEnum):
    """What happened to an action; a bounded set, safe as a metric label."""

    DELIVERED = "delivered"
    FAILED = "failed"  # with ``failure``: hard (never retry the address) or soft
    OPENED = "opened"
    CLICKED = "clicked"
    DISMISSED = "dismissed"
    REPLIED = "replied"
    UNSUBSCRIBED = "unsubscribed"  # the customer opted out of this channel at the provider
    # An RM task's call outcome:
    REACHED = "reached"
    NOT_REACHED = "not_reached"
    INTERESTED = "interested"
    DECLINED = "declined"


#: A contact's status before the channel reports anything.
SENT: Final = "sent"
#: A contact's status once the policy's ``ignored_after`` passed without any engagement
#: (Kairos's own verdict, not a channel's report).
IGNORED: Final = "ignored"

#: A contact's status: sent, what its channel reported, or ignored.
ContactStatus = Literal["sent", "ignored"] | FeedbackStatus

#: How far along each status is: a late "delivered" never undoes an "opened", and an
#: engagement reported after a contact was called ignored still counts.
STATUS_RANK: dict[str, int] = {
    SENT: 0,
    FeedbackStatus.DELIVERED: 10,
    FeedbackStatus.NOT_REACHED: 10,
    FeedbackStatus.DISMISSED: 20,
    FeedbackStatus.REACHED: 20,
    IGNORED: 25,
    FeedbackStatus.OPENED: 30,
    FeedbackStatus.DECLINED: 30,
    FeedbackStatus.CLICKED: 40,
    FeedbackStatus.REPLIED: 40,
    FeedbackStatus.INTERESTED: 40,
    FeedbackStatus.FAILED: 50,
    FeedbackStatus.UNSUBSCRIBED: 60,
}

#: Statuses that mean the customer engaged with the contact.
ENGAGED: frozenset[str] = frozenset(
    {
        FeedbackStatus.OPENED,
        FeedbackStatus.CLICKED,
        FeedbackStatus.REPLIED,
        FeedbackStatus.REACHED,
        FeedbackStatus.INTERESTED,
    }
)

#: How a contact ended, as ``contact_outcome`` features read it.
OutcomeKind = Literal["engaged", "ignored", "declined", "failed", "unsubscribed"]

#: The statuses that settle a contact, and the outcome each means; any other status
#: (sent, delivered, dismissed, not reached) may still turn into one of these.
SETTLING: dict[str, OutcomeKind] = {
    **dict.fromkeys(ENGAGED, "engaged"),
    IGNORED: "ignored",
    FeedbackStatus.DECLINED: "declined",
    FeedbackStatus.FAILED: "failed",
    FeedbackStatus.UNSUBSCRIBED: "unsubscribed",
}

#: Statuses only an RM task can have, and statuses an RM task cannot have.
_RM_ONLY = frozenset(
    {
        FeedbackStatus.REACHED,
        FeedbackStatus.NOT_REACHED,
        FeedbackStatus.INTERESTED,
        FeedbackStatus.DECLINED,
    }
)


class Feedback(BaseModel):
    """One report from a channel system about one action."""

    model_config = ConfigDict(extra="allow", frozen=True)

    feedback_id: NonEmptyStr = Field(description="Unique per report; re-sends keep it.")
    action_id: NonEmptyStr = Field(description="The action this reports on.")
    customer_id: NonEmptyStr = Field(description="Also the Kafka message key.")
    channel: Channel
    status: FeedbackStatus
    occurred_at: BankTime = Field(description="When the channel saw it (RFC 3339 with offset).")
    failure: Literal["hard", "soft"] | None = Field(
        default=None,
        description="For status 'failed': 'hard' (the address or device will never work: the "
        "channel is marked unreachable) or 'soft' (temporary).",
    )
    reason: str | None = Field(
        default=None, max_length=256, description="The provider's own reason, as text."
    )
    schema_version: int = Field(default=1, ge=1, le=MAX_COUNT)

    @model_validator(mode="after")
    def _consistent(self) -> Feedback:
        if (self.status is FeedbackStatus.FAILED) != (self.failure is not None):
            raise ValueError("'failure' (hard or soft) goes with status 'failed', and only there")
        if self.status in _RM_ONLY and self.channel is not Channel.RM:
            raise ValueError(f"status {self.status.value!r} is a call outcome: RM tasks only")
        return self


class ContactOutcome(BaseModel):
    """How one contact ended: what a feature with ``event: contact_outcome`` is fed.

    Each contact settles once: at the first engagement, failure, refusal or unsubscribe the
    channel reports, or as ``ignored`` once the policy's ``ignored_after`` passed with none.
    So "pushes ignored in 30 days" is a windowed count and "the push open rate over 90
    days" the average of ``engaged``; both stay bounded like any feature, beyond the few
    contacts the state remembers one by one.
    """

    model_config = ConfigDict(frozen=True)

    event_type: Literal["contact_outcome"] = "contact_outcome"
    channel: Channel
    rule_id: str = Field(description="The rule whose contact this was.")
    status: ContactStatus = Field(description="The status that settled it (e.g. opened, ignored).")
    outcome: OutcomeKind
    engaged: bool = Field(description="True for opened, clicked, replied, reached, interested.")
    sent_at: AwareDatetime = Field(description="When the contact was made.")
    occurred_at: AwareDatetime = Field(description="When it settled.")


def action_ref(action_id: str) -> str:
    """What the contact history keeps of an action id to match feedback to it.

    A whole id is 36 random characters that do not compress; 32 remembered contacts would
    add more than a kilobyte to every customer's state.
    """
    return fingerprint(action_id)
