"""Goals and conversions: whether the customer did what the contact was for, in time.

A rule with a ``goal`` watches for it after every decision that contacted the customer
(``treated``) and every one that held them out (``holdout``), so that uplift compares the
two groups alike. A goal event reached within the window becomes a conversion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.engine import waves
from rules.engine.verdict import RuleFailure, digest, failure_text, holds
from rules.ruleset import CompiledRule
from schemas.conversions import Conversion
from schemas.copying import evolve
from schemas.decisions import Decision, Outcome
from schemas.events import Event
from schemas.state import PENDING_GOALS, PendingGoal

if TYPE_CHECKING:
    from rules.engine.moment import Moment


def watch(moment: Moment, rule: CompiledRule, decision: Decision, start: Event) -> None:
    """Remember a sent or held-out decision's goal until its window ends."""
    assert rule.goal is not None and rule.spec.goal is not None
    goal = PendingGoal(
        rule_id=rule.id,
        rule_version=rule.version,
        decision_id=decision.decision_id,
        group="treated" if decision.outcome is Outcome.SENT else "holdout",
        start_event=start,
        until=start.occurred_at + rule.spec.goal.within,
    )
    goals = [*moment.state.goals, goal][-PENDING_GOALS:]
    moment.state = evolve(moment.state, {"goals": goals})


def check(moment: Moment, event: Event) -> None:
    """Attribute ``event`` to every decision whose goal it reaches in time."""
    state = moment.state
    if not state.goals:
        return
    kept: list[PendingGoal] = []
    for goal in state.goals:
        if event.occurred_at > goal.until:
            continue  # the goal's time is over: no conversion
        rule = moment.ruleset.by_id.get(goal.rule_id)
        pattern = rule.goal if rule is not None else None
        start = goal.start_event
        if (
            pattern is None
            or pattern.event != event.event_type
            or event.occurred_at < start.occurred_at
        ):
            kept.append(goal)
            continue
        context = moment.context(event, state.features, start=start)
        try:
            reached = holds(pattern.conditions, context)
        except Exception as exc:  # one rule's bug must not stop the others
            moment.failures.append(RuleFailure(goal.rule_id, failure_text(exc)))
            reached = False
        if not reached:
            kept.append(goal)
            continue
        waves.end_campaign(moment, goal.rule_id)
        moment.conversions.append(
            Conversion(
                conversion_id=digest("cnv_", goal.decision_id, event.event_id),
                customer_id=state.customer_id,
                rule_id=goal.rule_id,
                rule_version=goal.rule_version,
                decision_id=goal.decision_id,
                group=goal.group,
                event_id=event.event_id,
                converted_at=event.occurred_at,
            )
        )
    if len(kept) != len(state.goals):
        moment.state = evolve(moment.state, {"goals": kept})
