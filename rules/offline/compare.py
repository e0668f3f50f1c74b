"""What a rule change would add or remove: two rulesets backtested on the same events.

The question behind ``--compare`` is rarely "how many contacts in total" but "who would now
hear from us, who would no longer, and through which rule" — so the difference is taken per
rule over the sets of customers reached, not only over counts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rules.offline.backtest import Backtest, BacktestReport, RuleSummary

RuleChange = Literal["added", "removed", "changed", "same"]


class RuleDelta(BaseModel):
    """One rule under the base ruleset and under the other."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    change: RuleChange = Field(description="Rule only in the other (added), only in base, ...")
    version_before: int | None
    version_after: int | None
    sends_before: int
    sends_after: int
    suppressed_before: int
    suppressed_after: int
    customers_gained: int = Field(description="Reached by this rule only with the other rules.")
    customers_lost: int = Field(description="Reached by this rule only with the base rules.")
    sends_by_channel_before: dict[str, int]
    sends_by_channel_after: dict[str, int]


class BacktestDiff(BaseModel):
    """The other ruleset minus the base one, on the same inputs."""

    model_config = ConfigDict(frozen=True)

    base: BacktestReport
    other: BacktestReport
    rules: list[RuleDelta]
    contacts_by_channel_delta: dict[str, int]
    customers_gained: int = Field(description="Contacted only with the other rules.")
    customers_lost: int = Field(description="Contacted only with the base rules.")


def _by_channel(summary: RuleSummary | None) -> dict[str, int]:
    return {c.channel: c.sends for c in summary.channels} if summary else {}


def _change(
    version_before: int | None,
    version_after: int | None,
    before: RuleSummary | None,
    after: RuleSummary | None,
    same_reach: bool,
) -> RuleChange:
    if version_before is None:
        return "added"
    if version_after is None:
        return "removed"
    unchanged = (
        version_before == version_after
        and same_reach
        and _by_channel(before) == _by_channel(after)
        and (before.suppressed_by_reason if before else {})
        == (after.suppressed_by_reason if after else {})
    )
    return "same" if unchanged else "changed"


def compare(base: Backtest, other: Backtest) -> BacktestDiff:
    """Difference of two finished backtests that were fed the same profiles and events."""
    before_report, after_report = base.report(), other.report()
    before = {r.rule_id: r for r in before_report.rules}
    after = {r.rule_id: r for r in after_report.rules}
    declared_before = {rule.id: rule.spec.version for rule in base.ruleset.rules}
    declared_after = {rule.id: rule.spec.version for rule in other.ruleset.rules}
    deltas = []
    for rule_id in sorted({*before, *after, *declared_before, *declared_after}):
        old, new = before.get(rule_id), after.get(rule_id)
        reached_before, reached_after = base.reached(rule_id), other.reached(rule_id)
        version_before, version_after = declared_before.get(rule_id), declared_after.get(rule_id)
        change = _change(version_before, version_after, old, new, reached_before == reached_after)
        deltas.append(
            RuleDelta(
                rule_id=rule_id,
                change=change,
                version_before=version_before,
                version_after=version_after,
                sends_before=old.sends if old else 0,
                sends_after=new.sends if new else 0,
                suppressed_before=old.suppressed if old else 0,
                suppressed_after=new.suppressed if new else 0,
                customers_gained=len(reached_after - reached_before),
                customers_lost=len(reached_before - reached_after),
                sends_by_channel_before=_by_channel(old),
                sends_by_channel_after=_by_channel(new),
            )
        )
    channels = {*before_report.contacts_by_channel, *after_report.contacts_by_channel}
    everyone_before, everyone_after = base.reached(), other.reached()
    return BacktestDiff(
        base=before_report,
        other=after_report,
        rules=deltas,
        contacts_by_channel_delta={
            c: after_report.contacts_by_channel.get(c, 0)
            - before_report.contacts_by_channel.get(c, 0)
            for c in sorted(channels)
        },
        customers_gained=len(everyone_after - everyone_before),
        customers_lost=len(everyone_before - everyone_after),
    )
