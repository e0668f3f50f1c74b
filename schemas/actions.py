"""Actions: what channel systems (SMS gateway, push service, RM task queue) consume.

``action_id`` is derived from the decision, never random, so a re-delivered event or a
replay after a crash yields the same id and the channel system can drop the duplicate.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import NonEmptyStr
from schemas.wire_enum import WireEnum


class Channel(WireEnum):
    """Contact channels; each has its own output topic."""

    SMS = "sms"
    PUSH = "push"
    RM = "rm"


class Action(BaseModel):
    """One contact to make, on one channel, for one customer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    action_id: NonEmptyStr = Field(description="Deterministic: de-duplicate on it.")
    customer_id: NonEmptyStr
    channel: Channel
    rule_id: NonEmptyStr
    rule_version: int
    ruleset_version: str
    template: NonEmptyStr
    params: dict[str, Any] = {}
    priority: int
    created_at: AwareDatetime
    expires_at: AwareDatetime = Field(description="Never deliver after this instant.")
    trigger_event_ids: list[str]
    reason: str = Field(description="Human-readable: why this customer, why now.")
    campaign: str | None = Field(
        default=None,
        description="For a rule in a multi-wave campaign: the campaign (its first rule).",
    )
    wave: int | None = Field(default=None, description="The wave's number; the first is 1.")
    parent_action_id: str | None = Field(
        default=None, description="For a later wave: the action it follows up."
    )
    schema_version: int = 1


def derive_action_id(
    *,
    customer_id: str,
    rule_id: str,
    rule_version: int,
    channel: Channel,
    trigger_event_ids: list[str],
) -> str:
    """Hash what makes a decision unique; the same decision always gets the same id."""
    material = "\x1f".join(
        [customer_id, rule_id, str(rule_version), channel.value, *trigger_event_ids]
    )
    return "act_" + hashlib.blake2b(material.encode(), digest_size=16).hexdigest()
