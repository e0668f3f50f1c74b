"""What the console's pages show, as typed records: the contract between store and pages.

The store (:mod:`app.console.store`, DuckDB fed from the topics by
:mod:`app.console.ingest`) answers :class:`CampaignQueries`; the web pages
(:mod:`app.console.web`) render these records, as HTML and as the JSON their charts and
live refresh read. Rates and intervals are computed the way ``kairos report`` computes them
(``rules.offline.report``), so the two always agree on the same topics.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

#: The windows of the campaigns page: since local midnight (UTC), 7 and 30 days, everything.
Window = Literal["today", "7d", "30d", "all"]
WINDOWS: tuple[Window, ...] = ("today", "7d", "30d", "all")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class CampaignRow(_Record):
    """One rule (a campaign's wave is a rule of its own) over one window."""

    rule_id: str
    campaign: str | None = None
    wave: int | None = None
    fired: int = 0
    sent: int = 0
    sent_by_channel: dict[str, int] = Field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = Field(default_factory=dict)
    deferred: int = 0
    held_out: int = 0
    delivered: int = 0
    engaged: int = 0
    failed: int = 0
    delivered_rate: float | None = None
    engaged_rate: float | None = None
    treated_conversions: int = 0
    holdout_conversions: int = 0
    treated_rate: float | None = None
    holdout_rate: float | None = None
    uplift: float | None = None
    uplift_ci95: tuple[float, float] | None = None
    #: Contacts sent per day over the last 14 days, oldest first: the row's small trend.
    trend: list[int] = Field(default_factory=list)


class DayCount(_Record):
    day: date
    channel: str
    contacts: int


class CampaignDetail(_Record):
    """One rule's page: its row, its days, its suppressions, when customers heard from us."""

    row: CampaignRow
    contacts_per_day: list[DayCount] = Field(default_factory=list)
    #: Contacts by the customer's local hour (0-23), from the time zone of their latest
    #: profile; a customer whose profile the store has not seen counts at the UTC hour.
    local_hour: dict[int, int] = Field(default_factory=dict)
    #: How many of ``local_hour``'s contacts were counted at the UTC hour (no time zone known).
    local_hour_utc: int = 0
    versions: list[RuleVersion] = Field(default_factory=list)


class RuleVersion(_Record):
    """A version of a rule as deployed: which ruleset versions carried it, and its text."""

    rule_version: int
    ruleset_versions: list[str]
    first_deployed_at: datetime | None = None
    text: str


class StoreStatus(_Record):
    """How far the store has read: what the pages' "as of" line and /healthz say."""

    records: int = Field(description="Records read from the topics, all of them, ever.")
    last_record_at: datetime | None = Field(
        description="The newest decision's decided_at: the decisions' clock (simulated in "
        "the demo), the ``now`` to ask the windows at when it is not the wall clock."
    )
    lag: int | None = Field(default=None, description="Records behind the topics' ends.")
    skipped: int = Field(default=0, description="Records read that did not decode (skipped).")
    updated_at: datetime | None = Field(
        default=None, description="Wall-clock time the store last wrote a batch."
    )


class CustomerDecision(_Record):
    """One of a customer's decisions as the store keeps it, for the customer page.

    The decision as its worker wrote it — the reason's text, the evidence (each value the
    rule's conditions read), the events that triggered it — with what its channel reported
    of the contact. Ids are the store's keyed hashes (``ConsoleStore.key``), never the ids
    themselves; the customer's own id is replaced by :data:`CUSTOMER_PLACEHOLDER` wherever
    the reason, the evidence or the trigger event ids held it.
    """

    decision_key: str = Field(description="The store's keyed hash of the decision id.")
    rule_id: str
    rule_version: int
    ruleset_version: str
    outcome: str
    reason_code: str
    reason: str = Field(description="The reason as the worker wrote it.")
    evidence: dict[str, Any] = Field(default_factory=dict)
    trigger_event_ids: list[str] = Field(default_factory=list)
    channel: str | None = None
    action_key: str | None = Field(
        default=None, description="The store's keyed hash of the contact's action id."
    )
    action_status: str | None = Field(
        default=None,
        description="The furthest status its channel reported of the contact (as the "
        "campaigns' funnel counts it); None before any report.",
    )
    action_status_at: datetime | None = None
    decided_at: datetime
    deferred_until: datetime | None = None
    campaign: str | None = None
    wave: int | None = None


#: What stands for the customer's own id in a stored decision's reason, evidence and events.
CUSTOMER_PLACEHOLDER = "[customer]"


class CampaignQueries(Protocol):
    """What the pages ask of the store."""

    def campaigns(self, window: Window, now: datetime) -> list[CampaignRow]: ...

    def campaign(self, rule_id: str, now: datetime) -> CampaignDetail | None: ...

    def status(self) -> StoreStatus: ...


CampaignDetail.model_rebuild()
