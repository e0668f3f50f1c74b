"""Records of the rules topic: deployed ruleset bundles and the pointer to the live one.

Marketing ops deploy rules without engineers or restarts, so the rules themselves travel
over Kafka. The rules topic is compacted and holds two kinds of record:

* key ``bundle:<version>`` → :class:`RulesetBundle`: the YAML text of every rule file of one
  version. A key per version means compaction keeps every version ever deployed, which is
  what makes a rollback possible long after the deploy.
* key ``live`` → :class:`LivePointer`: which version workers must run. Compaction keeps the
  newest pointer; each pointer names the version it replaced, so the way back survives it.

A bundle stores source text rather than compiled rules because workers compile it with their
own rule compiler: a bundle stays readable across Kairos upgrades and never carries code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# Own alias rather than one from schemas.events: the deployment records must not change
# when the event contract does.
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PointerAction(StrEnum):
    """Why the live pointer moved."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"


class RulesetBundle(BaseModel):
    """One deployed version of the rules, as the files marketing ops wrote."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: NonEmptyStr = Field(
        description="The compiled ruleset's content version, e.g. 'rs-abc123def456'."
    )
    files: dict[str, str] = Field(
        min_length=1,
        description="File name relative to the deployed directory -> the file's YAML text.",
    )
    deployed_at: AwareDatetime
    deployed_by: NonEmptyStr = Field(description="Who deployed it, e.g. 'jane@ops-laptop'.")
    comment: str = Field(default="", description="Why it was deployed, for the audit trail.")
    overrides: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Checks the deployer overrode on purpose (--force, --skip-tests), each "
        "as the refusal it overrode: the audit trail says what was known at deploy time.",
    )
    schema_version: int = Field(default=1, ge=1)


class LivePointer(BaseModel):
    """The version every worker must run, and the change that made it live."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: NonEmptyStr = Field(description="Version of the bundle workers must run.")
    previous_version: str | None = Field(
        default=None,
        description="The version live before this change (None for the first deploy): "
        "what a rollback returns to.",
    )
    action: PointerAction
    at: AwareDatetime
    by: NonEmptyStr
    schema_version: int = Field(default=1, ge=1)
