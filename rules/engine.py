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

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rules.consent import choose_channel
from rules.expressions import read_field
from rules.features import FeatureView
from rules.ruleset import CompiledPattern, CompiledRule, Ruleset
from rules.state_update import apply_event, apply_profile, is_duplicate, new_state
from schemas.actions import Action, derive_action_id
from schemas.codec import EVENT_ADAPTER
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.profile import CustomerProfile
from schemas.state import CustomerState, FeatureState, PendingTimer, RuleHistory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """Time tolerances shared by the live worker and offline replays."""

    #: Events this far behind the newest seen still update windowed features.
    allowed_lateness: timedelta = timedelta(minutes=10)
    #: An absence timer fires this long after it is due, so a late exit event still counts.
    timer_grace: timedelta = timedelta(seconds=30)


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
    """A rule whose evaluation raised at run time (e.g. division by zero): it did not fire."""

    rule_id: str
    error: str


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

    @property
    def next_timer_due(self) -> datetime | None:
        return min((t.due_at for t in self.state.timers), default=None)


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


class _Decider:
    """One call of :func:`decide` or :func:`fire_due_timers`: accumulates its outputs."""

    def __init__(self, state: CustomerState, ruleset: Ruleset, now: datetime) -> None:
        self.state = state
        self.ruleset = ruleset
        self.now = now
        self.decisions: list[Decision] = []
        self.actions: list[Action] = []
        self.failures: list[RuleFailure] = []
        self.timers: list[TimerChange] = []

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

    def evaluate(self, rule: CompiledRule, context: EvaluationContext) -> bool:
        try:
            return _holds(rule.conditions, context) and self._sequence_holds(rule, context)
        except (ArithmeticError, TypeError, ValueError) as exc:
            self.failures.append(RuleFailure(rule.id, f"{type(exc).__name__}: {exc}"))
            return False

    def _sequence_holds(self, rule: CompiledRule, context: EvaluationContext) -> bool:
        if rule.after is None:
            return True
        earlier = context.roots["features"][rule.after.feature]
        return earlier is not None and timedelta(0) <= context.now - earlier <= rule.after.within

    # -- settling one moment: policy, arbitration, holdout, expiry ---------------------------

    def settle(self, fired: list[_Fired]) -> None:
        """Decide who among the rules fired at one moment gets to contact the customer."""
        if not fired:
            return
        customer_id = self.state.customer_id
        eligible: list[tuple[_Fired, Any]] = []
        outcomes: dict[str, tuple[Outcome, Reason, str, Any]] = {}
        for item in fired:
            reach = choose_channel(self.state.profile, item.rule.channels)
            blocked = self._contact_limit(item.rule)
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
                eligible.append((item, reach))
        # Arbitration: one contact per moment — the highest priority eligible rule, ties by id.
        eligible.sort(key=lambda pair: (-pair[0].rule.priority, pair[0].rule.id))
        for rank, (item, reach) in enumerate(eligible):
            rule = item.rule
            expires_at = item.event.occurred_at + rule.ttl
            if rank > 0:
                winner = eligible[0][0].rule
                why = f"{winner.id} (priority {winner.priority}) won this moment"
                outcomes[rule.id] = (
                    Outcome.SUPPRESSED,
                    Reason.ARBITRATION_LOST,
                    why,
                    reach.channel,
                )
            elif self.now >= expires_at:
                why = f"older than the rule's ttl {rule.ttl}; expired at {expires_at.isoformat()}"
                outcomes[rule.id] = (Outcome.SUPPRESSED, Reason.EXPIRED, why, reach.channel)
            elif in_holdout(customer_id, rule.id, rule.spec.holdout):
                why = f"in the {rule.spec.holdout:g}% holdout of {rule.id}: recorded, not sent"
                outcomes[rule.id] = (Outcome.HELD_OUT, Reason.HOLDOUT, why, reach.channel)
            else:
                why = f"{rule.spec.description or rule.id} ({reach.explanation})"
                outcomes[rule.id] = (Outcome.SENT, Reason.RULE_MATCHED, why, reach.channel)
        for item in fired:
            self._record(item, *outcomes[item.rule.id])

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

    def _record(self, item: _Fired, outcome: Outcome, code: Reason, why: str, channel: Any) -> None:
        rule, event = item.rule, item.event
        customer_id = self.state.customer_id
        trigger_ids = [event.event_id]
        action_id = None
        if outcome is Outcome.SENT:
            action_id = derive_action_id(
                customer_id=customer_id,
                rule_id=rule.id,
                rule_version=rule.version,
                channel=channel,
                trigger_event_ids=trigger_ids,
            )
            self.actions.append(
                Action(
                    action_id=action_id,
                    customer_id=customer_id,
                    channel=channel,
                    rule_id=rule.id,
                    rule_version=rule.version,
                    ruleset_version=self.ruleset.version,
                    template=rule.spec.template,
                    params=rule.render_params(item.context),
                    priority=rule.priority,
                    created_at=self.now,
                    expires_at=event.occurred_at + rule.ttl,
                    trigger_event_ids=trigger_ids,
                    reason=why,
                )
            )
            self._count_contact(rule)
        self.decisions.append(
            Decision(
                decision_id=_digest("dec_", customer_id, rule.id, str(rule.version), *trigger_ids),
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
        )

    def _count_contact(self, rule: CompiledRule) -> None:
        history = self.state.rules.get(rule.id) or RuleHistory()
        rules = dict(self.state.rules)
        rules[rule.id] = RuleHistory(sent=history.sent + 1, last_sent_at=self.now)
        self.state = self.state.model_copy(
            update={
                "rules": rules,
                "contacts_sent": self.state.contacts_sent + 1,
                "last_contact_at": self.now,
            }
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
            self.state = self.state.model_copy(update={"timers": kept})

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
        except (ArithmeticError, TypeError, ValueError) as exc:
            self.failures.append(RuleFailure(rule.id, f"{type(exc).__name__}: {exc}"))
            return False

    def schedule(self, rule: CompiledRule, event: Event) -> None:
        """Start (or restart) the wait: one pending timer per rule, the latest trigger."""
        assert rule.unless is not None
        timers = [t for t in self.state.timers if t.rule_id != rule.id]
        timers.append(
            PendingTimer(
                rule_id=rule.id,
                due_at=event.occurred_at + rule.unless.within,
                start_event=event.model_dump(mode="json"),
            )
        )
        self.state = self.state.model_copy(update={"timers": timers})
        self.timers.append(TimerChange(rule.id, "scheduled"))

    def fire_due(self, grace: timedelta) -> None:
        """Fire every timer whose wait (plus grace) is over; each fires once, then is gone."""
        due = [t for t in self.state.timers if t.due_at + grace <= self.now]
        if not due:
            return
        remaining = [t for t in self.state.timers if t.due_at + grace > self.now]
        self.state = self.state.model_copy(update={"timers": remaining})
        for timer in sorted(due, key=lambda t: t.due_at):
            rule = self.ruleset.by_id.get(timer.rule_id)
            if rule is None or not rule.spec.enabled or rule.unless is None:
                self.timers.append(TimerChange(timer.rule_id, "dropped"))
                continue
            self.timers.append(TimerChange(rule.id, "fired"))
            start = EVENT_ADAPTER.validate_python(timer.start_event)
            context = self.context(start, self.state.features)
            self.settle([_Fired(rule, context, start, _evidence(rule, context))])

    def verdict(self, **extra: Any) -> Verdict:
        return Verdict(
            state=self.state,
            decisions=self.decisions,
            actions=self.actions,
            failures=self.failures,
            timers=self.timers,
            **extra,
        )


def _active(rule: CompiledRule, at: datetime) -> bool:
    spec = rule.spec
    return (spec.start_at is None or spec.start_at <= at) and (
        spec.end_at is None or at < spec.end_at
    )


def _update_features(
    ruleset: Ruleset, state: CustomerState, event: Event, options: EngineOptions
) -> tuple[dict[str, FeatureState], bool]:
    """New feature states after ``event``; ``True`` if the event was too late to count."""
    feeds = ruleset.features_by_event.get(event.event_type, ())
    features = dict(state.features)
    too_late = (
        state.watermark is not None
        and event.occurred_at < state.watermark - options.allowed_lateness
    )
    if feeds and not too_late:
        context = EvaluationContext(
            roots={"event": event, "profile": state.profile, "state": state}, now=event.occurred_at
        )
        for feature in feeds:
            updated = feature.update(features.get(feature.name), context, event.occurred_at)
            if updated is not None:
                features[feature.name] = updated
    newest = max(filter(None, (state.watermark, event.occurred_at)))
    horizon = newest - options.allowed_lateness
    for name, current in list(features.items()):
        declared = ruleset.features.get(name)
        if declared is None:
            del features[name]  # no longer declared: its state is dead weight
        else:
            features[name] = declared.expire(current, horizon)
    return features, too_late


def decide(
    event: Event,
    state: CustomerState | None,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = EngineOptions(),
) -> Verdict:
    """Evaluate ``event`` for its customer: end waits it answers, fire due waits, then rules."""
    state = state or new_state(event.customer_id)
    if is_duplicate(state, event):
        return Verdict(state=state, duplicate=True)
    decider = _Decider(state, ruleset, now)
    decider.cancel_timers(event)
    decider.fire_due(options.timer_grace)

    features, too_late = _update_features(ruleset, decider.state, event, options)
    context = decider.context(event, features)
    candidates = ruleset.for_event(event)
    fired: list[_Fired] = []
    for rule in candidates:
        if not _active(rule, event.occurred_at) or not decider.evaluate(rule, context):
            continue
        if rule.unless is not None:
            decider.schedule(rule, event)
        else:
            fired.append(_Fired(rule, context, event, _evidence(rule, context)))
    decider.settle(fired)
    updated = apply_event(decider.state, event).model_copy(update={"features": features})
    decider.state = updated
    return decider.verdict(evaluated=tuple(rule.id for rule in candidates), late=too_late)


def fire_due_timers(
    state: CustomerState, ruleset: Ruleset, now: datetime, options: EngineOptions = EngineOptions()
) -> Verdict:
    """Fire the customer's absence timers that are due at ``now`` (a scheduler tick)."""
    decider = _Decider(state, ruleset, now)
    decider.fire_due(options.timer_grace)
    return decider.verdict()
