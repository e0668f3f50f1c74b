"""One moment of one customer: the state as it evolves, and what the engine concludes.

A :class:`Moment` is built per call of the engine (an event, a timer tick, a profile, an
RM reply). The engine's parts — arbitration, timers, goals, RM capacity — are functions
that take the moment and act on it; the moment itself only evaluates rules, records
decisions (with their actions) and counts contacts, so that every decision is made in one
place, with its ids derived one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from rules.engine import goals, rm_capacity, waves
from rules.engine.verdict import (
    WAITS,
    ActionTiming,
    EvaluationContext,
    Fired,
    RuleFailure,
    TimerChange,
    Verdict,
    digest,
    failure_text,
    holds,
    new_verdict,
)
from rules.features import FeatureView
from rules.policy import remember_contact
from rules.ruleset import CompiledRule, Ruleset
from schemas.actions import Action, Channel, derive_action_id
from schemas.capacity import RmRequest
from schemas.conversions import Conversion
from schemas.copying import evolve
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.feedback import action_ref
from schemas.state import CustomerState, FeatureState, PendingTimer, RuleHistory, TimerKind

#: One rule's outcome at a moment: what, why (code and text), and on which channel.
RuleOutcome = tuple[Outcome, Reason, str, Channel | None]


class Moment:
    """One call of the engine: accumulates the state's changes and the outputs."""

    __slots__ = (
        "actions",
        "conversions",
        "decisions",
        "failures",
        "grace",
        "now",
        "rm_requests",
        "ruleset",
        "state",
        "timers",
        "timings",
    )

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
        self.timings: dict[str, ActionTiming] = {}

    def context(
        self, event: Event, features: Mapping[str, FeatureState], start: Event | None = None
    ) -> EvaluationContext:
        """What a rule's expressions read at ``event``: event, profile, state, features."""
        roots: dict[str, Any] = {
            "event": event,
            "profile": self.state.profile,
            "state": self.state,
            "features": FeatureView(self.ruleset.features, features, event.occurred_at),
        }
        if start is not None:
            roots["start"] = start
        return EvaluationContext(roots, event.occurred_at)

    def evaluate(self, rule: CompiledRule, context: EvaluationContext, event: Event) -> bool:
        """Whether ``rule`` matches; a rule that raises is recorded as suppressed instead.

        Any exception, not only arithmetic: one rule's bug must never stop the other rules,
        nor the worker (it would read the same event again after a restart).
        """
        try:
            return holds(rule.conditions, context) and (
                rule.after is None or _sequence_holds(rule, context)
            )
        except Exception as exc:
            self.rule_failed(Fired(rule, context, event, {}), exc)
            return False

    def rule_failed(self, item: Fired, exc: Exception) -> None:
        """Count a rule that raised and record its decision as suppressed (``rule_error``)."""
        error = failure_text(exc)
        self.failures.append(RuleFailure(item.rule.id, error))
        self.record(item, Outcome.SUPPRESSED, Reason.RULE_ERROR, f"the rule raised {error}", None)

    def record(
        self,
        item: Fired,
        outcome: Outcome,
        code: Reason,
        why: str,
        channel: Channel | None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Record one rule's decision; a ``SENT`` one comes with its rendered ``params``."""
        rule, event = item.rule, item.event
        customer_id = self.state.customer_id
        if item.wave_of is not None:
            campaign, wave = item.wave_of.campaign, item.wave_of.wave
        elif rule.id in self.ruleset.waves_after:
            campaign, wave = rule.id, 1  # a campaign's first wave
        else:
            campaign = wave = None
        trigger_ids = [event.event_id]
        action_id = None
        action: Action | None = None
        if outcome is Outcome.SENT:
            assert channel is not None
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
                campaign=campaign,
                wave=wave,
                parent_action_id=item.wave_of.parent_action_id if item.wave_of else None,
            )
            self.count_contact(rule, channel, action_id)
        elif outcome is Outcome.HELD_OUT:
            self.count_rule_use(rule)  # as if sent: the holdout must meet the same cooldowns
        decision = Decision(
            decision_id=digest(
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
            campaign=campaign,
            wave=wave,
            deferred_until=self._deferred_until(rule.id) if outcome is Outcome.DEFERRED else None,
        )
        if action is not None and rm_capacity.needed(self, action):
            rm_capacity.request(self, action, decision, event, item.due().due_at)
        else:
            if action is not None:
                self.actions.append(action)
                self.timings[action.action_id] = item.due()
            self.decisions.append(decision)
        if rule.goal is not None and outcome in (Outcome.SENT, Outcome.HELD_OUT):
            goals.watch(self, rule, decision, item.event)
        if outcome in (Outcome.SENT, Outcome.HELD_OUT) and rule.id in self.ruleset.waves_after:
            waves.schedule(self, rule, item.event, action_id)

    def _deferred_until(self, rule_id: str) -> datetime | None:
        """When a deferred contact is due: its timer's time, the one place it is kept.

        Every deferral (quiet hours, an RM's next working day) stores its timer before it
        records the decision; reading the time back from the timer means the decision can
        never announce another time than the one the contact will actually be re-checked at.
        """
        return next(
            (t.due_at for t in self.state.timers if t.rule_id == rule_id and t.kind == "deferred"),
            None,
        )

    def count_rule_use(self, rule: CompiledRule) -> None:
        """Count towards the rule's cooldown and ``max_per_customer``."""
        history = self.state.rules.get(rule.id) or RuleHistory()
        rules = dict(self.state.rules)
        rules[rule.id] = RuleHistory(sent=history.sent + 1, last_sent_at=self.now)
        self.state = evolve(self.state, {"rules": rules})

    def count_contact(self, rule: CompiledRule, channel: Channel, action_id: str) -> None:
        """A real contact: the rule's limits, the customer's caps, and a ref for feedback."""
        self.count_rule_use(rule)
        ref = action_ref(action_id)
        self.state = evolve(
            self.state,
            {
                "contacts": remember_contact(self.state.contacts, channel, rule.id, self.now, ref),
                "contacts_sent": self.state.contacts_sent + 1,
                "last_contact_at": self.now,
            },
        )

    def add_timer(
        self,
        rule_id: str,
        event: Event,
        due_at: datetime,
        kind: TimerKind,
        change: str,
        channel: Channel | None = None,
        **wave: Any,
    ) -> None:
        """Keep one pending timer per rule and kind: the latest trigger replaces the last.

        ``wave``: for a campaign's wave, its ``parent_action_id``, ``campaign`` and ``wave``.
        """
        timers = [t for t in self.state.timers if not (t.rule_id == rule_id and t.kind == kind)]
        timers.append(
            PendingTimer(
                rule_id=rule_id,
                due_at=due_at,
                start_event=event,
                kind=kind,
                channel=channel,
                **wave,
            )
        )
        self.state = evolve(self.state, {"timers": timers})
        self.timers.append(TimerChange(rule_id, change))

    def verdict(
        self,
        *,
        evaluated: tuple[str, ...] = (),
        late: bool = False,
        feedback: str | None = None,
        feedback_after_s: float | None = None,
    ) -> Verdict:
        """What this moment concluded, with when the customer's next timer is due."""
        timers = self.state.timers
        grace = self.grace
        wake_up = (
            min([t.due_at + grace if t.kind in WAITS else t.due_at for t in timers])
            if timers
            else None
        )  # fires_at(), inlined: every verdict of a customer with a pending timer
        # Verdict's fields in declaration order, as its __init__ would store them
        return new_verdict(
            {
                "state": self.state,
                "decisions": self.decisions,
                "actions": self.actions,
                "evaluated": evaluated,
                "duplicate": False,
                "late": late,
                "failures": self.failures,
                "timers": self.timers,
                "conversions": self.conversions,
                "rm_requests": self.rm_requests,
                "feedback": feedback,
                "feedback_after_s": feedback_after_s,
                "wake_up_at": wake_up,
                "timings": self.timings,
            }
        )


def _sequence_holds(rule: CompiledRule, context: EvaluationContext) -> bool:
    """``after:``: the earlier event happened, within the rule's window before this one."""
    if rule.after is None:
        return True
    earlier = context.roots["features"][rule.after.feature]
    return earlier is not None and timedelta(0) <= context.now - earlier <= rule.after.within
