"""The audit trail: one record per rule that fired, whether or not a contact was sent.

This is what answers "why did (or didn't) this customer get that message?" — the rule and
its version, the events that triggered it, the state it read, and the outcome with a
machine-readable reason code that Prometheus counts and reports group by.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.actions import Channel
from schemas.events import NonEmptyStr
from schemas.wire_enum import WireEnum


class Outcome(WireEnum):
    """What happened to a rule that fired."""

    SENT = "sent"
    SUPPRESSED = "suppressed"
    HELD_OUT = "held_out"
    DEFERRED = "deferred"


class Reason(WireEnum):
    """Machine-readable reason codes; a bounded set, safe as a metric label."""

    RULE_MATCHED = "rule_matched"
    NO_PROFILE = "no_profile"
    MARKETING_OPT_OUT = "marketing_opt_out"
    NO_CONSENT = "no_consent"
    PUSH_DISABLED = "push_disabled"
    ARBITRATION_LOST = "arbitration_lost"
    EXPIRED = "expired"
    COOLDOWN = "cooldown"
    MAX_PER_CUSTOMER = "max_per_customer"
    HOLDOUT = "holdout"
    FREQUENCY_CAP = "frequency_cap"
    QUIET_HOURS = "quiet_hours"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RULE_WITHDRAWN = "rule_withdrawn"
    RM_CAPACITY = "rm_capacity"
    #: Every channel the rule may use hard-bounced (a wrong number, an uninstalled app).
    UNREACHABLE = "unreachable"
    #: The customer ignored the channel's last contacts: it rests (``policy.fatigue``).
    FATIGUE = "fatigue"
    #: The rule raised at run time (e.g. a division by zero in a parameter): counted in
    #: ``kairos_rule_errors_total``, and the other rules of the moment still decide.
    RULE_ERROR = "rule_error"


class Decision(BaseModel):
    """One rule's verdict on one moment for one customer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    decision_id: NonEmptyStr
    customer_id: NonEmptyStr
    rule_id: NonEmptyStr
    rule_version: int
    ruleset_version: str
    outcome: Outcome
    reason_code: Reason
    reason: str
    channel: Channel | None = None
    action_id: str | None = None
    trigger_event_ids: list[str]
    decided_at: AwareDatetime
    evidence: dict[str, Any] = {}
    campaign: str | None = Field(
        default=None,
        description="For a rule in a multi-wave campaign: the campaign (its first rule).",
    )
    wave: int | None = Field(default=None, description="That rule's wave in it; the first is 1.")
    deferred_until: AwareDatetime | None = Field(
        default=None,
        description="For a deferred decision: when the contact is due again (the end of quiet "
        "hours, an RM's next working day), when it is re-checked against consent, caps and "
        "expiry. Null for every other outcome.",
    )
    schema_version: int = 1
