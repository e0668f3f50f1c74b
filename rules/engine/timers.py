"""Durable timers in the customer's state: absence waits, deferred contacts, decision windows.

An ``unless:`` rule schedules an absence wait; an exit event within it cancels the wait; a
wait that runs out fires the rule, exactly once. Contacts deferred by quiet hours or RM
capacity, and rules gathered in a decision window, wait the same way. Timers live in the
state record, so they survive restarts and rebalances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.engine import waves
from rules.engine.arbitration import settle
from rules.engine.consent import channel_consented
from rules.engine.verdict import (
    WAITS,
    Fired,
    RuleFailure,
    TimerChange,
    evidence,
    failure_text,
    fires_at,
    holds,
    timer_timing,
)
from rules.ruleset import CompiledPattern, CompiledRule
from schemas.copying import evolve
from schemas.decisions import Outcome, Reason
from schemas.events import Event
from schemas.state import PendingTimer

if TYPE_CHECKING:
    from rules.engine.moment import Moment


def schedule(moment: Moment, rule: CompiledRule, event: Event) -> None:
    """Start (or restart) the wait: one pending timer per rule, the latest trigger."""
    assert rule.unless is not None
    due_at = event.occurred_at + rule.unless.within
    moment.add_timer(rule.id, event, due_at, "absence", "scheduled")


def cancel_waits(moment: Moment, event: Event) -> None:
    """An exit event within the wait ends it: the customer came back by themselves."""
    if not moment.state.timers or event.event_type not in moment.ruleset.exit_event_types:
        return
    kept: list[PendingTimer] = []
    for timer in moment.state.timers:
        rule = moment.ruleset.by_id.get(timer.rule_id)
        if rule is not None and rule.unless is not None and _exits(moment, rule, timer, event):
            moment.timers.append(TimerChange(rule.id, "cancelled"))
        else:
            kept.append(timer)
    if len(kept) != len(moment.state.timers):
        moment.state = evolve(moment.state, {"timers": kept})


def _exits(moment: Moment, rule: CompiledRule, timer: PendingTimer, event: Event) -> bool:
    start = timer.start_event
    if not start.occurred_at <= event.occurred_at <= timer.due_at:
        return False
    context = moment.context(event, moment.state.features, start=start)
    exits: tuple[CompiledPattern, ...] = rule.unless.exits if rule.unless else ()
    try:
        return any(
            pattern.event == event.event_type and holds(pattern.conditions, context)
            for pattern in exits
        )
    except Exception as exc:  # one rule's bug must not stop the others
        moment.failures.append(RuleFailure(rule.id, failure_text(exc)))
        return False


def fire_due(moment: Moment) -> None:
    """Fire every timer whose moment has come; each fires once, then is gone."""
    grace, now = moment.grace, moment.now
    # fires_at(), inlined: this runs on every event of a customer with a pending timer
    due = [
        t for t in moment.state.timers if (t.due_at + grace if t.kind in WAITS else t.due_at) <= now
    ]
    if not due:
        return
    remaining = [t for t in moment.state.timers if fires_at(t, grace) > now]
    moment.state = evolve(moment.state, {"timers": remaining})
    fired: list[Fired] = []
    for timer in sorted(due, key=lambda t: t.due_at):
        if timer.kind == "wave":
            wave = _due_wave(moment, timer)
            if wave is not None:
                wave.timing = timer_timing(timer, grace)
                fired.append(wave)
            continue
        rule = moment.ruleset.by_id.get(timer.rule_id)
        start = timer.start_event
        usable = rule is not None and rule.spec.enabled
        if timer.kind == "absence" and (not usable or rule is None or rule.unless is None):
            moment.timers.append(TimerChange(timer.rule_id, "dropped"))
            continue
        if rule is None or not usable:
            moment.timers.append(TimerChange(timer.rule_id, "dropped"))
            if rule is not None:  # a deferred contact of a now-disabled rule: say so
                why = f"{rule.id} was disabled before its deferred contact was due"
                context = moment.context(start, moment.state.features)
                moment.record(
                    Fired(rule, context, start, {}),
                    Outcome.SUPPRESSED,
                    Reason.RULE_WITHDRAWN,
                    why,
                    timer.channel,
                )
            continue
        moment.timers.append(TimerChange(rule.id, "fired"))
        context = moment.context(start, moment.state.features)
        timing = timer_timing(timer, grace)
        fired.append(Fired(rule, context, start, evidence(rule, context), timing=timing))
    settle(moment, fired)  # everything due now is one moment: one contact at most


def _due_wave(moment: Moment, timer: PendingTimer) -> Fired | None:
    """An absence wave goes out; an outcome wave whose outcome never came is dropped."""
    rule = moment.ruleset.by_id.get(timer.rule_id)
    spec = rule.spec.wave if rule is not None else None
    if spec is not None and spec.on:
        moment.timers.append(TimerChange(timer.rule_id, "dropped"))
        return None
    return waves.fire(moment, timer)


def withdraw_deferred(moment: Moment) -> None:
    """A consent withdrawal cancels the deferred contacts it no longer allows."""
    profile = moment.state.profile
    kept = []
    for timer in moment.state.timers:
        allowed = (
            profile is not None
            and timer.channel is not None
            and channel_consented(profile, timer.channel)
        )
        if timer.kind != "deferred" or allowed:
            kept.append(timer)
            continue
        start = timer.start_event
        rule = moment.ruleset.by_id.get(timer.rule_id)
        moment.timers.append(TimerChange(timer.rule_id, "cancelled"))
        if rule is not None:
            context = moment.context(start, moment.state.features)
            why = f"consent for {timer.channel} withdrawn before the deferred contact was due"
            moment.record(
                Fired(rule, context, start, {}),
                Outcome.SUPPRESSED,
                Reason.CONSENT_WITHDRAWN,
                why,
                timer.channel,
            )
    if len(kept) != len(moment.state.timers):
        moment.state = evolve(moment.state, {"timers": kept})
