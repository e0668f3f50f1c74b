"""The per-customer state record kept in the changelog-backed RocksDB table.

It is versioned (``state_version``) because it outlives deployments: a worker must read
records written by the previous release from the changelog. Keep it small — it is
serialised on every update — and bounded: windows are a few time buckets whose old
buckets expire, and every list has a hard cap.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schemas.actions import Channel
from schemas.copying import evolve
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.feedback import ContactStatus
from schemas.profile import CustomerProfile

#: The state record's version, written with it. 1: contacts and decision notes as JSON
#: objects; 2: as arrays (:class:`ContactRecord`, :class:`DecisionNote`). Every earlier version
#: still reads; a release that knows only an earlier one refuses a newer record as corrupt
#: rather than misread it.
STATE_VERSION: Literal[2] = 2
#: How many recent events are remembered (as short hashes of their ids) to drop re-deliveries;
#: re-deliveries come soon after the original (producer retries, replays after a crash).
RECENT_EVENT_IDS = 32
#: Decisions whose goal is watched at once; the oldest is dropped beyond it.
PENDING_GOALS = 16
#: Latest decisions kept for the customer API ("why did / didn't this customer hear from us?").
RECENT_DECISIONS = 5
#: Distinct values remembered per feature bucket (a distinct count saturates beyond it).
DISTINCT_VALUES_PER_BUCKET = 64


class FeatureState(BaseModel):
    """Incremental aggregate of one declared feature for one customer.

    ``buckets`` maps a bucket number (event time // bucket width) to the aggregate of the
    events in it: ``[count, sum, min, max]``. Numbers are floats to keep the record small;
    they come back as exact-enough decimals when a rule reads them.
    """

    model_config = ConfigDict(extra="ignore")

    sig: str = Field(description="Fingerprint of the feature definition; a change resets it.")
    buckets: dict[int, list[int | float]] = {}
    distinct: dict[int, list[str]] = {}
    last: Any = None
    last_at: AwareDatetime | None = None


#: An absence wait, a contact deferred by policy, or a rule waiting in a decision window.
TimerKind = Literal["absence", "deferred", "window", "wave"]


class PendingTimer(BaseModel):
    """A contact waiting for its moment: an absence rule, or a contact deferred by policy.

    ``absence``: the rule waits to see whether the customer comes back in time (an exit
    event cancels it). ``deferred``: the contact was decided but fell in quiet hours; it is
    re-checked against consent, caps and expiry when due (a consent withdrawal cancels it).
    ``window``: the rule fired inside the policy's decision window; every rule that fires
    before the window closes is arbitrated together, as one moment.
    The triggering event is kept whole: parameters and ``unless`` conditions
    (``start.flow``) read it when the timer fires, possibly on another worker after a
    restart or rebalance.
    """

    model_config = ConfigDict(extra="ignore")

    rule_id: str
    due_at: AwareDatetime
    start_event: Event
    kind: TimerKind = "absence"
    channel: Channel | None = None
    #: For a wave: the contact it follows up (None when that customer was held out).
    parent_action_id: str | None = None
    #: For a wave: the campaign (its first rule) and the number of this wave in it.
    campaign: str | None = None
    wave: int | None = None


class PendingGoal(BaseModel):
    """A decision whose goal may still be reached: treated and held-out customers alike."""

    model_config = ConfigDict(extra="ignore")

    rule_id: str
    rule_version: int
    decision_id: str
    group: Literal["treated", "holdout"]
    start_event: Event
    until: AwareDatetime


class ContactRecord(NamedTuple):
    """One marketing contact sent: for frequency caps, and what became of it.

    ``ref`` matches the channel's feedback to the contact (:func:`schemas.feedback.action_ref`
    of its ``action_id``); ``status`` is the furthest the channel has reported, ``sent``
    until it reports anything, and ``ignored`` once the policy's ``ignored_after`` passed
    without any engagement.

    A named tuple, not a model: a customer's history holds up to ``CONTACT_HISTORY`` of
    them, written with the state at every checkpoint that changed it. As a model each cost
    ~1 us to serialise (field names, a dict per contact) and three objects for the garbage
    collector to walk; as a tuple it is written as a JSON array (state version 2) in about
    a third of the time, and it is one object. Read by name, as before; changed with
    ``_replace``. A version 1 record (contacts as objects) still reads: pydantic takes a
    named tuple's fields by name too. People see them by name (:func:`state_view`).
    """

    channel: Channel
    rule_id: str
    at: AwareDatetime
    ref: str | None = None
    status: ContactStatus = "sent"
    status_at: AwareDatetime | None = None


class RuleHistory(BaseModel):
    """Contacts a rule made to this customer (or would have: holdouts count): for limits."""

    model_config = ConfigDict(extra="ignore")

    sent: int = 0
    last_sent_at: AwareDatetime | None = None


class DecisionNote(NamedTuple):
    """The gist of one decision, for support and ops; the full record is on the topic.

    A named tuple for the reasons :class:`ContactRecord` is one: every state keeps up to
    ``RECENT_DECISIONS`` of them, and each is written at every checkpoint.
    """

    decision_id: str
    rule_id: str
    rule_version: int
    outcome: Outcome
    reason_code: Reason
    channel: Channel | None
    at: AwareDatetime


def _upgraded(version: int) -> Literal[2]:
    """A record of an earlier version reads into this one, and is written back as this one."""
    return STATE_VERSION


class CustomerState(BaseModel):
    """What Kairos knows about one customer, enough to evaluate rules without a lookup."""

    model_config = ConfigDict(extra="ignore")

    state_version: Annotated[Literal[1, 2], AfterValidator(_upgraded)] = STATE_VERSION
    customer_id: str
    profile: CustomerProfile | None = None
    event_counts: dict[str, int] = {}
    last_seen: dict[str, AwareDatetime] = {}
    last_screen: str | None = None
    watermark: AwareDatetime | None = Field(
        default=None, description="Latest event time seen; events far behind it are too late."
    )
    recent_event_ids: list[str] = []
    features: dict[str, FeatureState] = {}
    timers: list[PendingTimer] = []
    rules: dict[str, RuleHistory] = {}
    contacts: list[ContactRecord] = Field(
        default=[], description="Recent contacts (bounded), for frequency caps."
    )
    goals: list[PendingGoal] = Field(
        default=[], description="Decisions still waiting for their goal (bounded)."
    )
    unreachable: dict[Channel, AwareDatetime] = Field(
        default={},
        description="Channels that hard-bounced, and when: not used until the profile changes.",
    )
    contacts_sent: int = 0
    last_contact_at: AwareDatetime | None = None
    recent_decisions: list[DecisionNote] = Field(
        default=[], description="The latest decisions (bounded), newest last."
    )

    def with_decisions(self, decisions: list[Decision]) -> CustomerState:
        """The same state, remembering ``decisions`` among its latest few."""
        if not decisions:
            return self
        notes = [  # the decisions' fields are validated: a note is built as it is (0.7 us)
            DecisionNote(
                decision_id=d.decision_id,
                rule_id=d.rule_id,
                rule_version=d.rule_version,
                outcome=d.outcome,
                reason_code=d.reason_code,
                channel=d.channel,
                at=d.decided_at,
            )
            for d in decisions
        ]
        recent = [*self.recent_decisions, *notes][-RECENT_DECISIONS:]
        return evolve(self, {"recent_decisions": recent})


#: The state's lists of named tuples, stored as JSON arrays: :func:`state_view` names them.
_NAMED_RECORDS: dict[str, tuple[tuple[str, ...], TypeAdapter[Any]]] = {
    "contacts": (ContactRecord._fields, TypeAdapter(list[ContactRecord])),
    "recent_decisions": (DecisionNote._fields, TypeAdapter(list[DecisionNote])),
}


def state_view(state: CustomerState) -> dict[str, Any]:
    """The state as JSON for people (the customer API, the console): every field named.

    The stored record writes contacts and decision notes as arrays, which support staff and
    the console should not have to decode by position.
    """
    view = state.model_dump(mode="json", exclude=set(_NAMED_RECORDS))
    for name, (fields, adapter) in _NAMED_RECORDS.items():
        rows = adapter.dump_python(getattr(state, name), mode="json")
        view[name] = [dict(zip(fields, row, strict=True)) for row in rows]
    return view
