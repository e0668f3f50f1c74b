"""The rule-file format as marketing ops write it (YAML), before compilation.

Unknown keys are rejected (``extra="forbid"``) because in a rule file a typo such as
``priorty`` silently changing nothing is worse than a refused deploy. The JSON Schema of
this format (``rules/rule-file.schema.json``, generated from these models) lets editors
autocomplete and flag typos before the file is ever validated.

Every duration is at most ``rules.language.durations.MAX_DURATION``, and the ones that
measure a wait or a window (``ttl``, ``within``, ``window``, ``bucket``) must be longer than
0s: a ``ttl`` of 0s would load and then end every contact as "expired", without a word.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rules.language.durations import Duration, PositiveDuration
from rules.policy import PolicySpec
from schemas.actions import Channel
from schemas.feedback import FeedbackStatus

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
FeatureName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
EventType = Literal["app_click", "transaction", "drop_off"]
#: What may feed a feature: an event type, or how the customer's contacts ended.
FeatureSource = Literal["app_click", "transaction", "drop_off", "contact_outcome"]
Aggregate = Literal["count", "sum", "avg", "min", "max", "last", "last_seen", "distinct_count"]
Conditions = Annotated[
    list[str],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
    Field(description="Expressions that must all hold (AND); one string or a list."),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "Expressions that must all hold (AND); one string or a list.",
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventPattern(_Strict):
    """An event type with conditions: what a sequence, an absence or a goal looks for."""

    event: EventType
    when: Conditions = []


class FeatureSpec(_Strict):
    """A per-customer aggregate kept up to date incrementally, optionally over a window."""

    name: FeatureName = Field(description="Read in rules as features.<name>.")
    description: str = ""
    aggregate: Aggregate
    event: FeatureSource = Field(
        description="The event type that feeds it, or contact_outcome: each of the customer's "
        "contacts as it settles (engaged, ignored, declined, failed, unsubscribed)."
    )
    value: str | None = Field(
        default=None,
        description="Expression of the value aggregated (not needed for count and last_seen).",
    )
    when: Conditions = []
    window: PositiveDuration | None = Field(
        default=None, description="Sliding event-time window; absent means all time."
    )
    bucket: PositiveDuration | None = Field(
        default=None, description="Window granularity; by default about a sixteenth of it."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        needs_value = self.aggregate not in ("count", "last_seen")
        if needs_value and self.value is None:
            raise ValueError(f"aggregate {self.aggregate!r} needs a 'value' expression")
        if not needs_value and self.value is not None:
            raise ValueError(f"aggregate {self.aggregate!r} takes no 'value'")
        if self.bucket is not None and self.window is None:
            raise ValueError("'bucket' needs a 'window'")
        if self.bucket is not None and self.window is not None and self.bucket > self.window:
            raise ValueError("'bucket' must not be longer than 'window'")
        return self


class SequenceSpec(EventPattern):
    """``after``: the trigger counts only if this event happened before it, within a time."""

    within: PositiveDuration


class AbsenceSpec(_Strict):
    """``unless``: wait ``within`` after the trigger; fire only if none of ``events`` came.

    Conditions of these events may read ``start.<field>``, the triggering event, to match
    the exit to the entry (the *same* application completed, not any application).
    """

    within: PositiveDuration
    events: Annotated[list[EventPattern], Field(min_length=1)]


class WaveSpec(_Strict):
    """A later wave of a campaign: it follows up the contact of rule ``after``.

    ``unless``: wait ``within`` after that contact and go out only if the channel reported
    none of these statuses by then ("the push not opened within 24h: an SMS"). ``on``: go
    out as soon as one of these statuses is reported within ``within`` ("the SMS failed:
    an RM task"). A wave inherits its campaign's holdout and trigger; a goal reached ends
    the campaign's pending waves.
    """

    after: RuleId = Field(description="The rule (the previous wave) whose contact this follows.")
    unless: list[FeedbackStatus] = Field(default_factory=list)
    on: list[FeedbackStatus] = Field(default_factory=list)
    within: PositiveDuration

    @model_validator(mode="after")
    def _one_kind(self) -> WaveSpec:
        if bool(self.unless) == bool(self.on):
            raise ValueError(
                "a wave goes out either 'unless' the previous contact reached a status in "
                "time, or 'on' a status: give exactly one of the two"
            )
        return self


class GoalSpec(EventPattern):
    """The outcome a contact is meant to cause, for conversion and uplift reporting."""

    within: PositiveDuration


class RuleSpec(_Strict):
    """One rule: when this moment happens and these conditions hold, contact on a channel."""

    id: RuleId = Field(description="Stable identifier, lower-case: letters, digits, _ . -")
    version: int = Field(ge=1, description="Bump on every change; decisions record it.")
    description: str = ""
    owner: str | None = None
    enabled: bool = True
    start_at: AwareDatetime | None = Field(default=None, description="Active from (event time).")
    end_at: AwareDatetime | None = Field(default=None, description="Active until (exclusive).")
    event: EventType = Field(description="The event type that triggers the rule.")
    when: Conditions = []
    after: SequenceSpec | None = None
    unless: AbsenceSpec | None = None
    channels: Annotated[list[Channel], Field(min_length=1)] = Field(
        description="Preference order: the first channel the customer can be reached on wins."
    )
    channel_order: Literal["fixed", "engagement"] = Field(
        default="fixed",
        description="'engagement': try the channels in the order of this customer's own "
        "engagement with them (opened, clicked, replied...), the listed order breaking ties.",
    )
    template: Annotated[str, StringConstraints(min_length=1)]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='Literals, or "{{ expression }}" to read event, profile, state, features.',
    )
    priority: int = Field(default=50, ge=0, le=100, description="Higher wins arbitration.")
    ttl: PositiveDuration = Field(
        default=timedelta(hours=24),
        description="How long after the moment the contact still makes sense.",
    )
    cooldown: Duration | None = Field(
        default=None, description="Minimum time between two contacts of this rule to a customer."
    )
    max_per_customer: int | None = Field(default=None, ge=1)
    quiet_hours: Literal["defer", "drop"] | None = Field(
        default=None,
        description="In the policy's quiet hours: send at the next allowed time, or drop. "
        "Default: what the policy says.",
    )
    rm_when_full: Literal["next_channel", "next_day"] | None = Field(
        default=None,
        description="When the RM's day is full: next channel, or next day. Default: the policy.",
    )
    holdout: float = Field(
        default=0, ge=0, le=100, description="Percent of customers held out, for measuring uplift."
    )
    goal: GoalSpec | None = None
    wave: WaveSpec | None = Field(
        default=None,
        description="A later wave of a campaign: follows up another rule's contact. Its "
        "'event' is the campaign's trigger event type, its conditions read that event.",
    )

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @model_validator(mode="after")
    def _dates(self) -> RuleSpec:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if self.wave is not None and (self.after or self.unless or self.holdout):
            raise ValueError(
                "a wave follows its campaign: no 'after', 'unless' or 'holdout' of its own "
                "(the campaign's first rule holds its holdout for every wave)"
            )
        return self


class RuleFile(_Strict):
    """A rule file: features, rules and (in one file of a ruleset) the contact policy."""

    features: list[FeatureSpec] = []
    rules: list[RuleSpec] = []
    policy: PolicySpec | None = None
