"""The rule-file format as marketing ops write it (YAML), before compilation.

Unknown keys are rejected (``extra="forbid"``) because in a rule file a typo such as
``priorty`` silently changing nothing is worse than a refused deploy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from rules.durations import parse_duration
from schemas.actions import Channel

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
EventType = Literal["app_click", "transaction", "drop_off"]


class RuleSpec(BaseModel):
    """One rule: when this event happens and these conditions hold, contact on this channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId = Field(description="Stable identifier, lower-case: letters, digits, _ . -")
    version: int = Field(ge=1, description="Bump on every change; decisions record it.")
    description: str = ""
    owner: str | None = None
    enabled: bool = True
    event: EventType = Field(description="The event type that triggers the rule.")
    when: list[str] = Field(
        default_factory=list, description="Conditions, all of which must hold (AND)."
    )
    channels: Annotated[list[Channel], Field(min_length=1)] = Field(
        description="Preference order: the first channel the customer can be reached on wins."
    )
    template: Annotated[str, StringConstraints(min_length=1)]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='Literal values, or "{{ expression }}" to read event, profile or state.',
    )
    priority: int = Field(default=50, ge=0, le=100, description="Higher wins arbitration.")
    ttl: timedelta = Field(
        default=timedelta(hours=24),
        description="How long after the event the contact still makes sense.",
    )

    @field_validator("when", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


class RuleFile(BaseModel):
    """A YAML file: a list of rules under ``rules:``."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]]
