"""``decide``: one event, one customer's state, one ruleset in; decisions and actions out.

Pure and synchronous — no Kafka, no Faust, no clock of its own — so the live worker, the
rule tests and the backtest run exactly the same code. Two clocks, on purpose:

* rules are evaluated in **event time**: windows, sequences and ``now`` in an expression
  are measured from the event's ``occurred_at``;
* ``now`` passed in is the **decision time** (the worker's clock, or the replay clock):
  it stamps ``created_at``, decides expiry and cooldowns, and fires absence timers.

Rules see the event, the profile, ``state`` as it was *before* this event, and
``features`` *including* this event (so "the third view in 7 days" is ``>= 3``).
"""

from __future__ import annotations

import decimal
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

from rules.consent import channel_consented, choose_channel
from rules.features import FeatureView
from rules.language.expressions import read_field
from rules.policy import remember_contact
from rules.ruleset import CompiledPattern, CompiledRule, Ruleset
from rules.state_update import apply_profile, event_fingerprint, event_update, evolve, new_state
from schemas.actions import Action, Channel, derive_action_id
from schemas.capacity import RmReply, RmRequest
from schemas.codec import EVENT_ADAPTER
from schemas.conversions import Conversion
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.profile import CustomerProfile
from schemas.state import (
    PENDING_GOALS,
    CustomerState,
    FeatureState,
    PendingGoal,
    PendingTimer,
    RuleHistory,
)

log = logging.getLogger(__name__)
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class EngineOptions:
    """Time tolerances shared by the live worker and offline replays."""

    #: Events this far behind the newest seen still update windowed features.
    allowed_lateness: timedelta = timedelta(minutes=10)
    #: An absence timer fires this long after it is due, so a late exit event still counts.
    timer_grace: timedelta = timedelta(seconds=30)
    #: Event times further ahead of the clock than this do not move a customer's watermark:
    #: one event stamped hours ahead (a device clock, a producer bug) would otherwise make
    #: every correctly stamped event after it "too late" for windowed features.
    max_future_skew: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class EvaluationContext:
    """The roots an expression reads, and event time as ``now``.

    ``memo`` caches condition results for this one moment: the ruleset shares one compiled
    object per distinct condition text, so a condition many rules repeat runs once.
    """

    roots: Mapping[str, Any]
    now: datetime
    memo: dict[int, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleFailure:
    """A rule (or a feature) that raised at run time, e.g. a division by zero.

    The rule did not fire (its decision is recorded as suppressed with reason
    ``rule_error``); a feature keeps its previous value. ``error`` is the exception's type
    and message: it goes to the decision record, never to a log, since an event's values
    can appear in it.
    """

    rule_id: str
    error: str
    kind: Literal["rule", "feature"] = "rule"


#: What decimal's signals mean: their own text is a list of classes, "[<class ...>]".
_DECIMAL_SIGNALS: tuple[tuple[type[ArithmeticError], str], ...] = (
    (decimal.DivisionByZero, "division by zero"),
    (decimal.Overflow, "the number grew too large"),
    (decimal.InvalidOperation, "invalid arithmetic (e.g. 0 / 0)"),
)


def _failure_text(exc: Exception) -> str:
    """An exception as one bounded line for a decision's reason."""
    message = next((m for kind, m in _DECIMAL_SIGNALS if isinstance(exc, kind)), str(exc))
    text = f"{type(exc).__name__}: {message}"
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass(frozen=True)
class TimerChange:
    """An absence wait started, cancelled by an exit event, fired, or dropped."""

    rule_id: str
    change: str  # "scheduled" | "cancelled" | "fired" | "dropped"


@dataclass(frozen=True)
class Verdict:
    """Everything ``decide`` concluded; the caller persists ``state`` and emits the rest."""

    state: CustomerState
    decisions: list[Decision] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    evaluated: tuple[str, ...] = ()
    duplicate: bool = False
    late: bool = False
    failures: list[RuleFailure] = field(default_factory=list)
    timers: list[TimerChange] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    rm_requests: list[RmRequest] = field(default_factory=list)

    #: When the customer's earliest pending timer should fire (for the scheduler).
    wake_up_at: datetime | None = None


@dataclass
class _Fired:
    """A rule that fired at one moment, with what it fired on."""

    rule: CompiledRule
    context: EvaluationContext
    event: Event
    evidence: dict[str, Any]


def _holds(conditions: Any, context: EvaluationContext) -> bool:
    memo = context.memo
    for condition in conditions:
        result = memo.get(id(condition))
        if result is None:
            result = memo[id(condition)] = bool(condition.evaluate(context))
        if not result:
            return False
    return True


def _evidence(rule: CompiledRule, context: EvaluationContext) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in rule.evidence_paths:
        head, *rest = path.split(".")
        if not rest and head != "now":
            continue  # a whole record is not evidence, and would bloat the audit trail
        value: Any = context.now if head == "now" else context.roots.get(head)
        for name in rest:
            value = read_field(value, name)
        values[path] = value
    return values


def _digest(prefix: str, *parts: str) -> str:
    return prefix + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def in_holdout(customer_id: str, rule_id: str, percent: float) -> bool:
    """Stable assignment: the same customer is always in or out of a rule's holdout."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{rule_id}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


def apply_profile_update(state: CustomerState | None, profile: CustomerProfile) -> CustomerState:
    """Fold a profile update into the state (no rule is triggered by a profile change yet)."""
    return apply_profile(state or new_state(profile.customer_id), profile)


def fires_at(timer: PendingTimer, grace: timedelta) -> datetime:
    """When a timer fires: absence waits ``grace`` late, deferred contacts on time.

    The grace lets a late exit event still cancel the wait; a deferred contact has nothing
    to wait for once its quiet hours end.
    """
    return timer.due_at + grace if timer.kind == "absence" else timer.due_at


class _Decider:
    """One call of :func:`decide` or :func:`fire_due_timers`: accumulates its outputs."""

    def __init__(
        self, state: CustomerState, ruleset: Ruleset, now: datetime, grace: timedelta
    ) -> None:
        self.state = state
        self.ruleset = ruleset
        self.now = now
        self.grace = grace
        self.decisions: list[Decision] = []
        self.actions: list[Action] = []
        self.failures: list[RuleFailure] = []
        self.timers: list[TimerChange] = []
        self.conversions: list[Conversion] = []
        self.rm_requests: list[RmRequest] = []

    def context(
        self, event: Event, features: Mapping[str, FeatureState], start: Event | None = None
    ) -> EvaluationContext:
        roots: dict[str, Any] = {
            "event": event,
            "profile": self.state.profile,
            "state": self.state,
            "features": FeatureView(self.ruleset.features, features, event.occurred_at),
        }
        if start is not None:
            roots["start"] = start
        return EvaluationContext(roots=roots, now=event.occurred_at)

    def evaluate(self, rule: CompiledRule, context: EvaluationContext, event: Event) -> bool:
        """Whether ``rule`` matches; a rule that raises is recorded as suppressed instead.

        Any exception, not only arithmetic: one rule's bug must never stop the other rules,
        nor the worker (it would read the same event again after a restart).
        """
        try:
            return _holds(rule.conditions, context) and self._sequence_holds(rule, context)
        except Exception as exc:
            self.rule_failed(_Fired(rule, context, event, {}), exc)
            return False

    def rule_failed(self, item: _Fired, exc: Exception) -> tuple[Outcome, Reason, str, None]:
        """Count a rule that raised and record its decision as suppressed (``rule_error``)."""
        error = _failure_text(exc)
        self.failures.append(RuleFailure(item.rule.id, error))
        outcome = (Outcome.SUPPRESSED, Reason.RULE_ERROR, f"the rule raised {error}", None)
        self._record(item, *outcome)
        return outcome

    def _sequence_holds(self, rule: CompiledRule, context: EvaluationContext) -> bool:
        if rule.after is None:
            return True
        earlier = context.roots["features"][rule.after.feature]
        return earlier is not None and timedelta(0) <= context.now - earlier <= rule.after.within

    # -- settling one moment: policy, arbitration, holdout, expiry ---------------------------

    def settle(self, fired: list[_Fired], unavailable: Mapping[Channel, str] | None = None) -> None:
        """Decide who among the rules fired at one moment gets to contact the customer.

        Consent, reachability, caps and per-rule limits first (a rule that may not contact
        never wins); then one contact per moment — the highest priority, ties by rule id —
        then expiry, holdout and quiet hours for the winner.
        """
        if not fired:
            return
        profile = self.state.profile
        zone = ZoneInfo(profile.timezone) if profile is not None else _UTC
        policy = self.ruleset.policy
        capped_channels, cap_reason = policy.capped_channels(self.state.contacts, self.now, zone)
        capped = {**dict.fromkeys(capped_channels, cap_reason or "capped"), **(unavailable or {})}
        eligible: list[tuple[_Fired, Channel]] = []
        outcomes: dict[str, tuple[Outcome, Reason, str, Channel | None]] = {}
        failed: set[str] = set()
        for item in fired:
            try:
                reach = choose_channel(profile, item.rule.channels, capped)
                blocked = self._contact_limit(item.rule)
            except Exception as exc:
                self.rule_failed(item, exc)
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
                outcomes[rule.id] = self._winner_outcome(item, channel, how, zone)
                if outcomes[rule.id][0] is Outcome.SENT:
                    params = rule.render_params(item.context)
            except Exception as exc:  # a rule that raises loses its moment to the next one
                self.rule_failed(item, exc)
                failed.add(rule.id)
                continue
            winner = rule
        for item in fired:
            if item.rule.id not in failed:
                self._record(item, *outcomes[item.rule.id], params=params)

    def settle_or_wait(self, fired: list[_Fired]) -> None:
        """Settle now, or — with a decision window — join the customer's open window."""
        window = self.ruleset.policy.decision_window
        if not fired or not window:
            self.settle(fired)
            return
        open_windows = [t.due_at for t in self.state.timers if t.kind == "window"]
        closes_at = min(open_windows) if open_windows else self.now + window
        for item in fired:
            self._add_timer(item.rule.id, item.event, closes_at, "window", "windowed")

    def _winner_outcome(
        self, item: _Fired, channel: Channel, how: str, zone: ZoneInfo
    ) -> tuple[Outcome, Reason, str, Channel | None]:
        """Expiry, holdout and quiet hours, for the one rule that won the moment."""
        rule = item.rule
        expires_at = item.event.occurred_at + rule.ttl
        if self.now >= expires_at:
            why = f"older than the rule's ttl {rule.ttl}; expired at {expires_at.isoformat()}"
            return Outcome.SUPPRESSED, Reason.EXPIRED, why, channel
        if in_holdout(self.state.customer_id, rule.id, rule.spec.holdout):
            why = f"in the {rule.spec.holdout:g}% holdout of {rule.id}: recorded, not sent"
            return Outcome.HELD_OUT, Reason.HOLDOUT, why, channel
        allowed_at = self.ruleset.policy.next_allowed(channel, self.now, zone)
        if allowed_at is not None:
            quiet = self.ruleset.policy.quiet_rule(channel)
            mode = rule.spec.quiet_hours or (quiet.action if quiet else "defer")
            local = self.now.astimezone(zone).strftime("%H:%M %Z")
            if mode == "drop":
                why = f"{channel.value} quiet hours at {local} in {zone.key}; the rule drops"
                return Outcome.SUPPRESSED, Reason.QUIET_HOURS, why, channel
            if allowed_at >= expires_at:
                why = f"quiet hours at {local} outlast its expiry at {expires_at:%Y-%m-%d %H:%M}"
                return Outcome.SUPPRESSED, Reason.EXPIRED, why, channel
            self._defer(item, channel, allowed_at)
            why = (
                f"{channel.value} quiet hours at {local} in {zone.key}; "
                f"deferred to {allowed_at.isoformat()}"
            )
            return Outcome.DEFERRED, Reason.QUIET_HOURS, why, channel
        return (
            Outcome.SENT,
            Reason.RULE_MATCHED,
            f"{rule.spec.description or rule.id} ({how})",
            channel,
        )

    def _defer(self, item: _Fired, channel: Channel, due_at: datetime) -> None:
        self._add_timer(item.rule.id, item.event, due_at, "deferred", "deferred", channel)

    def _add_timer(
        self,
        rule_id: str,
        event: Event,
        due_at: datetime,
        kind: Literal["absence", "deferred", "window"],
        change: str,
        channel: Channel | None = None,
    ) -> None:
        """Keep one pending timer per rule and kind: the latest trigger replaces the last."""
        timers = [t for t in self.state.timers if not (t.rule_id == rule_id and t.kind == kind)]
        timers.append(
            PendingTimer(
                rule_id=rule_id,
                due_at=due_at,
                start_event=event.model_dump(mode="json"),
                kind=kind,
                channel=channel,
            )
        )
        self.state = evolve(self.state, {"timers": timers})
        self.timers.append(TimerChange(rule_id, change))

    def withdraw_deferred(self) -> None:
        """A consent withdrawal cancels the deferred contacts it no longer allows."""
        profile = self.state.profile
        kept = []
        for timer in self.state.timers:
            allowed = (
                profile is not None
                and timer.channel is not None
                and channel_consented(profile, timer.channel)
            )
            if timer.kind != "deferred" or allowed:
                kept.append(timer)
                continue
            start = EVENT_ADAPTER.validate_python(timer.start_event)
            rule = self.ruleset.by_id.get(timer.rule_id)
            self.timers.append(TimerChange(timer.rule_id, "cancelled"))
            if rule is not None:
                context = self.context(start, self.state.features)
                why = f"consent for {timer.channel} withdrawn before the deferred contact was due"
                self._record(
                    _Fired(rule, context, start, {}),
                    Outcome.SUPPRESSED,
                    Reason.CONSENT_WITHDRAWN,
                    why,
                    timer.channel,
                )
        if len(kept) != len(self.state.timers):
            self.state = evolve(self.state, {"timers": kept})

    def _contact_limit(self, rule: CompiledRule) -> tuple[Reason, str] | None:
        history = self.state.rules.get(rule.id)
        if history is None:
            return None
        spec = rule.spec
        if spec.max_per_customer is not None and history.sent >= spec.max_per_customer:
            return Reason.MAX_PER_CUSTOMER, f"already contacted {history.sent}x by {rule.id}"
        if spec.cooldown is not None and history.last_sent_at is not None:
            until = history.last_sent_at + spec.cooldown
            if self.now < until:
                return Reason.COOLDOWN, f"{rule.id} cooling down until {until.isoformat()}"
        return None

    def _record(
        self,
        item: _Fired,
        outcome: Outcome,
        code: Reason,
        why: str,
        channel: Any,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Record one rule's decision; a ``SENT`` one comes with its rendered ``params``."""
        rule, event = item.rule, item.event
        customer_id = self.state.customer_id
        trigger_ids = [event.event_id]
        action_id = None
        action: Action | None = None
        if outcome is Outcome.SENT:
            action_id = derive_action_id(
                customer_id=customer_id,
                rule_id=rule.id,
                rule_version=rule.version,
                channel=channel,
                trigger_event_ids=trigger_ids,
            )
            action = Action(
                action_id=action_id,
                customer_id=customer_id,
                channel=channel,
                rule_id=rule.id,
                rule_version=rule.version,
                ruleset_version=self.ruleset.version,
                template=rule.spec.template,
                params=params if params is not None else rule.render_params(item.context),
                priority=rule.priority,
                created_at=self.now,
                expires_at=event.occurred_at + rule.ttl,
                trigger_event_ids=trigger_ids,
                reason=why,
            )
            self._count_contact(rule, channel)
        elif outcome is Outcome.HELD_OUT:
            self._count_rule_use(rule)  # as if sent: the holdout must meet the same cooldowns
        decision = Decision(
            decision_id=_digest(
                "dec_", customer_id, rule.id, str(rule.version), outcome.value, *trigger_ids
            ),
            customer_id=customer_id,
            rule_id=rule.id,
            rule_version=rule.version,
            ruleset_version=self.ruleset.version,
            outcome=outcome,
            reason_code=code,
            reason=why,
            channel=channel,
            action_id=action_id,
            trigger_event_ids=trigger_ids,
            decided_at=self.now,
            evidence=item.evidence,
        )
        if action is not None and self._needs_rm_capacity(action):
            self._request_rm_capacity(action, decision, event)
        else:
            if action is not None:
                self.actions.append(action)
            self.decisions.append(decision)
        if rule.goal is not None and outcome in (Outcome.SENT, Outcome.HELD_OUT):
            self._watch_goal(rule, decision, item.event)

    # -- RM capacity --------------------------------------------------------------------------

    def _needs_rm_capacity(self, action: Action) -> bool:
        return action.channel is Channel.RM and self.ruleset.policy.rm_capacity is not None

    def _capacity_key(self) -> str:
        spec = self.ruleset.policy.rm_capacity
        profile = self.state.profile
        assert spec is not None and profile is not None
        if spec.per == "branch" and profile.branch_id:
            return f"branch:{profile.branch_id}"
        return f"rm:{profile.rm_id}" if profile.rm_id else f"branch:{profile.branch_id}"

    def _request_rm_capacity(self, action: Action, decision: Decision, start: Event) -> None:
        """Ask the RM's capacity owner; it emits the action and the decision if granted."""
        spec = self.ruleset.policy.rm_capacity
        assert spec is not None
        rule = self.ruleset.by_id[action.rule_id]
        day, retry_at = self.ruleset.policy.rm_day(self.now)
        self.rm_requests.append(
            RmRequest(
                capacity_key=self._capacity_key(),
                day=day,
                daily_limit=spec.daily_limit,
                when_full=rule.spec.rm_when_full or spec.when_full,
                retry_at=retry_at,
                action=action,
                decision=decision,
                start_event=start.model_dump(mode="json"),
            )
        )

    def rm_capacity_full(self, reply: RmReply) -> None:
        """The RM's day was full: undo the optimistic count, then fall back or wait a day."""
        rule = self.ruleset.by_id.get(reply.rule_id)
        start = EVENT_ADAPTER.validate_python(reply.start_event)
        self._uncount_contact(reply.rule_id, start.event_id)
        if rule is None or not rule.spec.enabled:
            self.timers.append(TimerChange(reply.rule_id, "dropped"))
            return
        context = self.context(start, self.state.features)
        item = _Fired(rule, context, start, _evidence(rule, context))
        why = f"{reply.capacity_key} has no capacity left on {reply.day}"
        if reply.when_full == "next_channel":
            self.settle([item], unavailable={Channel.RM: why})
            return
        self._defer(item, Channel.RM, reply.retry_at)
        self._record(
            item,
            Outcome.DEFERRED,
            Reason.RM_CAPACITY,
            f"{why}; deferred to {reply.retry_at.isoformat()}",
            Channel.RM,
        )

    def _uncount_contact(self, rule_id: str, trigger_event_id: str) -> None:
        contacts = list(self.state.contacts)
        for index in range(len(contacts) - 1, -1, -1):
            if contacts[index].channel is Channel.RM and contacts[index].rule_id == rule_id:
                del contacts[index]
                break
        rules = dict(self.state.rules)
        history = rules.get(rule_id)
        if history is not None and history.sent > 0:
            rules[rule_id] = evolve(history, {"sent": history.sent - 1})
        goals = [
            g
            for g in self.state.goals
            if not (g.rule_id == rule_id and g.start_event.get("event_id") == trigger_event_id)
        ]
        self.state = evolve(
            self.state,
            {
                "contacts": contacts,
                "rules": rules,
                "goals": goals,
                "contacts_sent": max(self.state.contacts_sent - 1, 0),
            },
        )

    # -- goals -------------------------------------------------------------------------------

    def _watch_goal(self, rule: CompiledRule, decision: Decision, start: Event) -> None:
        assert rule.goal is not None and rule.spec.goal is not None
        goal = PendingGoal(
            rule_id=rule.id,
            rule_version=rule.version,
            decision_id=decision.decision_id,
            group="treated" if decision.outcome is Outcome.SENT else "holdout",
            start_event=start.model_dump(mode="json"),
            until=start.occurred_at + rule.spec.goal.within,
        )
        goals = [*self.state.goals, goal][-PENDING_GOALS:]
        self.state = evolve(self.state, {"goals": goals})

    def check_goals(self, event: Event) -> None:
        """Attribute ``event`` to every decision whose goal it reaches in time."""
        if not self.state.goals:
            return
        kept: list[PendingGoal] = []
        for goal in self.state.goals:
            if event.occurred_at > goal.until:
                continue  # the goal's time is over: no conversion
            rule = self.ruleset.by_id.get(goal.rule_id)
            pattern = rule.goal if rule is not None else None
            start = EVENT_ADAPTER.validate_python(goal.start_event)
            if (
                pattern is None
                or pattern.event != event.event_type
                or event.occurred_at < start.occurred_at
            ):
                kept.append(goal)
                continue
            context = self.context(event, self.state.features, start=start)
            try:
                reached = _holds(pattern.conditions, context)
            except Exception as exc:  # one rule's bug must not stop the others
                self.failures.append(RuleFailure(goal.rule_id, _failure_text(exc)))
                reached = False
            if not reached:
                kept.append(goal)
                continue
            self.conversions.append(
                Conversion(
                    conversion_id=_digest("cnv_", goal.decision_id, event.event_id),
                    customer_id=self.state.customer_id,
                    rule_id=goal.rule_id,
                    rule_version=goal.rule_version,
                    decision_id=goal.decision_id,
                    group=goal.group,
                    event_id=event.event_id,
                    converted_at=event.occurred_at,
                )
            )
        if len(kept) != len(self.state.goals):
            self.state = evolve(self.state, {"goals": kept})

    def _count_rule_use(self, rule: CompiledRule) -> None:
        """Count towards the rule's cooldown and ``max_per_customer``."""
        history = self.state.rules.get(rule.id) or RuleHistory()
        rules = dict(self.state.rules)
        rules[rule.id] = RuleHistory(sent=history.sent + 1, last_sent_at=self.now)
        self.state = evolve(self.state, {"rules": rules})

    def _count_contact(self, rule: CompiledRule, channel: Channel) -> None:
        """A real contact: the rule's limits and the customer's frequency caps."""
        self._count_rule_use(rule)
        self.state = evolve(
            self.state,
            {
                "contacts": remember_contact(self.state.contacts, channel, rule.id, self.now),
                "contacts_sent": self.state.contacts_sent + 1,
                "last_contact_at": self.now,
            },
        )

    # -- absence timers ------------------------------------------------------------------------

    def cancel_timers(self, event: Event) -> None:
        """An exit event within the wait ends it: the customer came back by themselves."""
        if not self.state.timers or event.event_type not in self.ruleset.exit_event_types:
            return
        kept: list[PendingTimer] = []
        for timer in self.state.timers:
            rule = self.ruleset.by_id.get(timer.rule_id)
            if rule is not None and rule.unless is not None and self._exits(rule, timer, event):
                self.timers.append(TimerChange(rule.id, "cancelled"))
            else:
                kept.append(timer)
        if len(kept) != len(self.state.timers):
            self.state = evolve(self.state, {"timers": kept})

    def _exits(self, rule: CompiledRule, timer: PendingTimer, event: Event) -> bool:
        start = EVENT_ADAPTER.validate_python(timer.start_event)
        if not start.occurred_at <= event.occurred_at <= timer.due_at:
            return False
        context = self.context(event, self.state.features, start=start)
        exits: tuple[CompiledPattern, ...] = rule.unless.exits if rule.unless else ()
        try:
            return any(
                pattern.event == event.event_type and _holds(pattern.conditions, context)
                for pattern in exits
            )
        except Exception as exc:  # one rule's bug must not stop the others
            self.failures.append(RuleFailure(rule.id, _failure_text(exc)))
            return False

    def schedule(self, rule: CompiledRule, event: Event) -> None:
        """Start (or restart) the wait: one pending timer per rule, the latest trigger."""
        assert rule.unless is not None
        due_at = event.occurred_at + rule.unless.within
        self._add_timer(rule.id, event, due_at, "absence", "scheduled")

    def fire_due(self) -> None:
        """Fire every timer whose moment has come; each fires once, then is gone."""
        grace, now = self.grace, self.now
        # fires_at(), inlined: this runs on every event of a customer with a pending timer
        due = [
            t
            for t in self.state.timers
            if (t.due_at + grace if t.kind == "absence" else t.due_at) <= now
        ]
        if not due:
            return
        remaining = [t for t in self.state.timers if fires_at(t, self.grace) > self.now]
        self.state = evolve(self.state, {"timers": remaining})
        fired: list[_Fired] = []
        for timer in sorted(due, key=lambda t: t.due_at):
            rule = self.ruleset.by_id.get(timer.rule_id)
            start = EVENT_ADAPTER.validate_python(timer.start_event)
            usable = rule is not None and rule.spec.enabled
            if timer.kind == "absence" and (not usable or rule is None or rule.unless is None):
                self.timers.append(TimerChange(timer.rule_id, "dropped"))
                continue
            if rule is None or not usable:
                self.timers.append(TimerChange(timer.rule_id, "dropped"))
                if rule is not None:  # a deferred contact of a now-disabled rule: say so
                    why = f"{rule.id} was disabled before its deferred contact was due"
                    context = self.context(start, self.state.features)
                    self._record(
                        _Fired(rule, context, start, {}),
                        Outcome.SUPPRESSED,
                        Reason.RULE_WITHDRAWN,
                        why,
                        timer.channel,
                    )
                continue
            self.timers.append(TimerChange(rule.id, "fired"))
            context = self.context(start, self.state.features)
            fired.append(_Fired(rule, context, start, _evidence(rule, context)))
        self.settle(fired)  # everything due now is one moment: one contact at most

    def verdict(self, **extra: Any) -> Verdict:
        timers = self.state.timers
        grace = self.grace
        wake_up = (
            min([t.due_at + grace if t.kind == "absence" else t.due_at for t in timers])
            if timers
            else None
        )  # fires_at(), inlined: every verdict of a customer with a pending timer
        return Verdict(
            state=self.state,
            wake_up_at=wake_up,
            decisions=self.decisions,
            actions=self.actions,
            failures=self.failures,
            timers=self.timers,
            conversions=self.conversions,
            rm_requests=self.rm_requests,
            **extra,
        )


def _active(rule: CompiledRule, at: datetime) -> bool:
    spec = rule.spec
    return (spec.start_at is None or spec.start_at <= at) and (
        spec.end_at is None or at < spec.end_at
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: tzinfo types whose offset never changes: ``horizon - window`` is then the same instant
#: as the horizon's minus the window (a zone with DST may shift it by the offset change).
_FIXED_OFFSETS = (timezone, TzInfo)


def _expired_features(
    ruleset: Ruleset, features: Mapping[str, FeatureState], horizon: datetime
) -> list[tuple[str, FeatureState | None]]:
    """Features to replace (buckets expired) or drop (``None``: no longer declared).

    The same as calling ``CompiledFeature.expire(state, horizon)`` on every feature, which
    ran on every feature of every event: only windowed features can expire, and with a
    fixed-offset horizon (every parsed event time) the oldest live bucket is computed in
    exact integer microseconds — ``datetime.timestamp()`` is those microseconds divided by
    a million, so the figure is bit-for-bit the same.
    """
    declared = ruleset.features
    changes: list[tuple[str, FeatureState | None]] = []
    if not features.keys() <= declared.keys():
        for name in features:
            if name not in declared:
                changes.append((name, None))  # no longer declared: its state is dead weight
    horizon_us = (
        (horizon - _EPOCH) // _MICROSECOND if type(horizon.tzinfo) in _FIXED_OFFSETS else None
    )
    for name, feature, window_us, bucket in ruleset.windowed:
        value = features.get(name)
        if value is None or (not value.buckets and not value.distinct):
            continue
        if horizon_us is None:
            oldest = feature.oldest_bucket(horizon)
        else:
            oldest = int((horizon_us - window_us) / 1_000_000) // bucket
        expired = feature.expire_before(value, oldest)
        if expired is not value:
            changes.append((name, expired))
    return changes


class _FeedContext:
    """What a feature's conditions and value read: ``EvaluationContext`` without the memo.

    A plain slotted object, because one is built for nearly every event and a frozen
    dataclass pays ``object.__setattr__`` per field.
    """

    __slots__ = ("now", "roots")

    def __init__(self, roots: Mapping[str, Any], now: datetime) -> None:
        self.roots = roots
        self.now = now


def _update_features(
    ruleset: Ruleset,
    state: CustomerState,
    event: Event,
    options: EngineOptions,
    watermark_cap: datetime,
    failures: list[RuleFailure],
) -> tuple[dict[str, FeatureState], bool]:
    """New feature states after ``event``; ``True`` if the event was too late to count.

    Runs on every event, so the features dict is copied only once something in it changes
    (most events feed one or two features and expire none): the result is then the state's
    own dict, which nothing mutates in place. A feature whose conditions or value raise
    keeps its previous state and is added to ``failures``.
    """
    occurred_at = event.occurred_at
    watermark = state.watermark
    too_late = watermark is not None and occurred_at < watermark - options.allowed_lateness
    current = state.features
    features: dict[str, FeatureState] | None = None
    feeds = ruleset.features_by_event.get(event.event_type, ())
    if feeds and not too_late:
        context = _FeedContext(
            {"event": event, "profile": state.profile, "state": state}, occurred_at
        )
        for feature in feeds:
            name = feature.name
            known = features if features is not None else current
            try:
                updated = feature.update(known.get(name), context, occurred_at)
            except Exception as exc:  # e.g. a value that divides by a zero balance
                failures.append(RuleFailure(name, _failure_text(exc), kind="feature"))
                continue
            if updated is not None:
                if features is None:
                    features = dict(current)
                features[name] = updated
    stamped = occurred_at if occurred_at <= watermark_cap else watermark_cap
    newest = stamped if watermark is None or stamped > watermark else watermark
    horizon = newest - options.allowed_lateness
    known = features if features is not None else current
    changes = _expired_features(ruleset, known, horizon)
    if changes:
        if features is None:
            features = dict(current)
        for name, changed in changes:
            if changed is None:
                del features[name]
            else:
                features[name] = changed
    return (features if features is not None else current), too_late


def decide(
    event: Event,
    state: CustomerState | None,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = EngineOptions(),
) -> Verdict:
    """Evaluate ``event`` for its customer: end waits it answers, fire due waits, then rules."""
    state = state or new_state(event.customer_id)
    fingerprint = event_fingerprint(event)
    if fingerprint in state.recent_event_ids:  # a re-delivery (is_duplicate, hashed once)
        return Verdict(state=state, duplicate=True)
    decider = _Decider(state, ruleset, now, options.timer_grace)
    decider.check_goals(event)
    decider.cancel_timers(event)
    decider.fire_due()

    watermark_cap = now + options.max_future_skew
    features, too_late = _update_features(
        ruleset, decider.state, event, options, watermark_cap, decider.failures
    )
    context = decider.context(event, features)
    candidates = ruleset.for_event(event)
    fired: list[_Fired] = []
    for rule in candidates:
        if not _active(rule, event.occurred_at) or not decider.evaluate(rule, context, event):
            continue
        if rule.unless is not None:
            decider.schedule(rule, event)
            continue
        try:
            evidence = _evidence(rule, context)
        except Exception as exc:
            decider.rule_failed(_Fired(rule, context, event, {}), exc)
            continue
        fired.append(_Fired(rule, context, event, evidence))
    decider.settle_or_wait(fired)
    # apply_event, and the features
    update = event_update(decider.state, event, fingerprint, watermark_cap)
    update["features"] = features
    decider.state = evolve(decider.state, update)
    return decider.verdict(evaluated=tuple([rule.id for rule in candidates]), late=too_late)


def fire_due_timers(
    state: CustomerState, ruleset: Ruleset, now: datetime, options: EngineOptions = EngineOptions()
) -> Verdict:
    """Fire the customer's absence timers that are due at ``now`` (a scheduler tick)."""
    decider = _Decider(state, ruleset, now, options.timer_grace)
    decider.fire_due()
    return decider.verdict()


def update_profile(
    state: CustomerState | None,
    profile: CustomerProfile,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = EngineOptions(),
) -> Verdict:
    """Apply a profile update; a consent withdrawal cancels deferred contacts it forbids."""
    decider = _Decider(apply_profile_update(state, profile), ruleset, now, options.timer_grace)
    decider.withdraw_deferred()
    return decider.verdict()


def handle_rm_capacity_full(
    state: CustomerState,
    reply: RmReply,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = EngineOptions(),
) -> Verdict:
    """An RM contact came back refused for capacity: fall back, or retry the next day."""
    decider = _Decider(state, ruleset, now, options.timer_grace)
    decider.rm_capacity_full(reply)
    return decider.verdict()
