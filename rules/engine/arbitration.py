"""Settling one moment: contact policy, then one contact at most, then the winner's fate.

Consent, reachability, caps and per-rule limits first (a rule that may not contact never
wins); then one contact per moment — the highest priority, ties by rule id; then expiry,
holdout and quiet hours for the winner. A rule that raises anywhere on the way loses its
moment to the next eligible rule and is recorded as ``rule_error``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rules.engine.consent import choose_channel
from rules.engine.verdict import Fired, in_holdout
from rules.ruleset import CompiledRule
from schemas.actions import Channel
from schemas.decisions import Outcome, Reason
from schemas.feedback import ENGAGED
from schemas.state import ContactRecord

if TYPE_CHECKING:
    from rules.engine.moment import Moment, RuleOutcome

_UTC = ZoneInfo("UTC")


def settle(
    moment: Moment, fired: list[Fired], unavailable: Mapping[Channel, str] | None = None
) -> None:
    """Decide who among the rules fired at one moment gets to contact the customer."""
    if not fired:
        return
    profile = moment.state.profile
    zone = ZoneInfo(profile.timezone) if profile is not None else _UTC
    policy = moment.ruleset.policy
    capped = {
        **policy.capped_channels(moment.state.contacts, moment.now, zone),
        **(unavailable or {}),
    }
    resting = policy.fatigued_channels(moment.state.contacts, moment.now) if policy.fatigue else {}
    eligible: list[tuple[Fired, Channel]] = []
    outcomes: dict[str, RuleOutcome] = {}
    failed: set[str] = set()
    for item in fired:
        try:
            preferences = item.rule.channels
            if item.rule.spec.channel_order == "engagement":
                preferences = by_engagement(preferences, moment.state.contacts)
            reach = choose_channel(profile, preferences, capped, moment.state.unreachable, resting)
            blocked = contact_limit(moment, item.rule)
        except Exception as exc:
            moment.rule_failed(item, exc)
            failed.add(item.rule.id)
            continue
        if reach.channel is None:
            outcomes[item.rule.id] = (
                Outcome.SUPPRESSED,
                reach.reason_code,
                reach.explanation,
                None,
            )
        elif blocked is not None:
            outcomes[item.rule.id] = (Outcome.SUPPRESSED, blocked[0], blocked[1], reach.channel)
        else:
            eligible.append((item, reach.channel))
            outcomes[item.rule.id] = (
                Outcome.SENT,
                Reason.RULE_MATCHED,
                reach.explanation,
                reach.channel,
            )
    eligible.sort(key=lambda pair: (-pair[0].rule.priority, pair[0].rule.id))
    winner: CompiledRule | None = None
    params: dict[str, Any] | None = None
    for item, channel in eligible:
        rule = item.rule
        if winner is not None:
            why = f"{winner.id} (priority {winner.priority}) won this moment"
            outcomes[rule.id] = (Outcome.SUPPRESSED, Reason.ARBITRATION_LOST, why, channel)
            continue
        how = outcomes[rule.id][2]
        try:
            outcomes[rule.id] = winner_outcome(moment, item, channel, how, zone)
            if outcomes[rule.id][0] is Outcome.SENT:
                params = rule.render_params(item.context)
        except Exception as exc:  # a rule that raises loses its moment to the next one
            moment.rule_failed(item, exc)
            failed.add(rule.id)
            continue
        winner = rule
    for item in fired:
        if item.rule.id not in failed:
            moment.record(item, *outcomes[item.rule.id], params=params)


def by_engagement(channels: list[Channel], contacts: list[ContactRecord]) -> list[Channel]:
    """``channels`` ordered by the customer's engagement with each, most engaging first.

    The rate is smoothed (one engaged and one ignored contact assumed on every channel), so
    a channel never tried ranks in the middle, and one contact decides nothing by itself;
    the listed order breaks ties.
    """
    engaged: Counter[Channel] = Counter()
    sent: Counter[Channel] = Counter()
    for contact in contacts:
        sent[contact.channel] += 1
        engaged[contact.channel] += contact.status in ENGAGED
    return sorted(channels, key=lambda c: -(engaged[c] + 1) / (sent[c] + 2))


def settle_or_wait(moment: Moment, fired: list[Fired]) -> None:
    """Settle now, or — with a decision window — join the customer's open window."""
    window = moment.ruleset.policy.decision_window
    if not fired or not window:
        settle(moment, fired)
        return
    open_windows = [t.due_at for t in moment.state.timers if t.kind == "window"]
    closes_at = min(open_windows) if open_windows else moment.now + window
    for item in fired:
        moment.add_timer(item.rule.id, item.event, closes_at, "window", "windowed")


def winner_outcome(
    moment: Moment, item: Fired, channel: Channel, how: str, zone: ZoneInfo
) -> RuleOutcome:
    """Expiry, holdout and quiet hours, for the one rule that won the moment."""
    rule, now, policy = item.rule, moment.now, moment.ruleset.policy
    expires_at = item.event.occurred_at + rule.ttl
    if now >= expires_at:
        why = f"older than the rule's ttl {rule.ttl}; expired at {expires_at.isoformat()}"
        return Outcome.SUPPRESSED, Reason.EXPIRED, why, channel
    if in_holdout(moment.state.customer_id, rule.id, rule.spec.holdout):
        why = f"in the {rule.spec.holdout:g}% holdout of {rule.id}: recorded, not sent"
        return Outcome.HELD_OUT, Reason.HOLDOUT, why, channel
    allowed_at = policy.next_allowed(channel, now, zone)
    if allowed_at is not None:
        quiet = policy.quiet_rule(channel)
        mode = rule.spec.quiet_hours or (quiet.action if quiet else "defer")
        local = now.astimezone(zone).strftime("%H:%M %Z")
        if mode == "drop":
            why = f"{channel.value} quiet hours at {local} in {zone.key}; the rule drops"
            return Outcome.SUPPRESSED, Reason.QUIET_HOURS, why, channel
        if allowed_at >= expires_at:
            why = f"quiet hours at {local} outlast its expiry at {expires_at:%Y-%m-%d %H:%M}"
            return Outcome.SUPPRESSED, Reason.EXPIRED, why, channel
        moment.add_timer(rule.id, item.event, allowed_at, "deferred", "deferred", channel)
        why = (
            f"{channel.value} quiet hours at {local} in {zone.key}; "
            f"deferred to {allowed_at.isoformat()}"
        )
        return Outcome.DEFERRED, Reason.QUIET_HOURS, why, channel
    return Outcome.SENT, Reason.RULE_MATCHED, f"{rule.spec.description or rule.id} ({how})", channel


def contact_limit(moment: Moment, rule: CompiledRule) -> tuple[Reason, str] | None:
    """The rule's own limits for this customer: ``max_per_customer`` and its cooldown."""
    history = moment.state.rules.get(rule.id)
    if history is None:
        return None
    spec = rule.spec
    if spec.max_per_customer is not None and history.sent >= spec.max_per_customer:
        return Reason.MAX_PER_CUSTOMER, f"already contacted {history.sent}x by {rule.id}"
    if spec.cooldown is not None and history.last_sent_at is not None:
        until = history.last_sent_at + spec.cooldown
        if moment.now < until:
            return Reason.COOLDOWN, f"{rule.id} cooling down until {until.isoformat()}"
    return None
