"""Campaigns in waves: a later wave follows up the previous wave's contact, by its outcome.

When a rule with waves after it contacts a customer (or holds them out), each following
wave waits on a durable timer in the customer's state, like an ``unless:`` wait:

* an **absence** wave (``unless: [opened, clicked]``, ``within: 24h``) goes out when the
  timer is due, unless the channel reported one of those statuses for the contact first;
* an **outcome** wave (``on: [failed]``) goes out as soon as the channel reports one of
  those statuses within ``within``; its timer running out means the outcome never came.

A wave inherits its campaign's trigger event (its conditions and parameters read it) and
its holdout: a customer held out of the campaign's first rule is held out of every wave,
so the campaign's uplift is measured whole. Its action carries the campaign, the wave and
the parent ``action_id``. A goal reached ends the campaign's pending waves. Ids are derived
as for any contact, so a wave fired again after a crash carries the same ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.engine.arbitration import settle
from rules.engine.verdict import ActionTiming, Fired, TimerChange, evidence
from rules.ruleset import CompiledRule
from schemas.copying import evolve
from schemas.decisions import Outcome, Reason
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.state import PendingTimer

if TYPE_CHECKING:
    from rules.engine.moment import Moment


def schedule(moment: Moment, rule: CompiledRule, start: Event, action_id: str | None) -> None:
    """Start the waves that follow ``rule``'s contact (``action_id``; None when held out)."""
    for wave in moment.ruleset.waves_after.get(rule.id, ()):
        assert wave.spec.wave is not None
        campaign, number = moment.ruleset.campaign(wave.id)
        moment.add_timer(
            wave.id,
            start,
            moment.now + wave.spec.wave.within,
            "wave",
            "scheduled",
            parent_action_id=action_id,
            campaign=campaign,
            wave=number,
        )


def on_feedback(moment: Moment, feedback: Feedback) -> None:
    """A report on a contact: end the absence waves it answers, send the outcome waves it asks."""
    firing: list[PendingTimer] = []
    kept: list[PendingTimer] = []
    for timer in moment.state.timers:
        rule = moment.ruleset.by_id.get(timer.rule_id)
        spec = rule.spec.wave if rule is not None else None
        if timer.kind != "wave" or spec is None or timer.parent_action_id != feedback.action_id:
            kept.append(timer)
        elif feedback.status in spec.unless:
            moment.timers.append(TimerChange(timer.rule_id, "cancelled"))
        elif feedback.status in spec.on:
            firing.append(timer)
        else:
            kept.append(timer)
    if len(kept) == len(moment.state.timers):
        return
    moment.state = evolve(moment.state, {"timers": kept})
    fired = [item for timer in firing if (item := fire(moment, timer)) is not None]
    for item in fired:  # sent on the report, as it arrived: due when the channel reported
        item.timing = ActionTiming("direct", feedback.occurred_at)
    settle(moment, fired)


def fire(moment: Moment, timer: PendingTimer) -> Fired | None:
    """The wave of ``timer`` as a fired rule, for the moment's settlement.

    ``None`` when there is nothing to settle: the rule is gone or disabled (dropped), or
    the campaign held this customer out (the wave is recorded as held out, not sent).
    """
    rule = moment.ruleset.by_id.get(timer.rule_id)
    if rule is None or not rule.spec.enabled or rule.spec.wave is None:
        moment.timers.append(TimerChange(timer.rule_id, "dropped"))
        return None
    moment.timers.append(TimerChange(rule.id, "fired"))
    start = timer.start_event
    context = moment.context(start, moment.state.features)
    item = Fired(rule, context, start, evidence(rule, context), wave_of=timer)
    if timer.parent_action_id is None:  # the campaign's holdout: out of every wave
        why = f"held out of campaign {timer.campaign}: recorded, not sent"
        moment.record(item, Outcome.HELD_OUT, Reason.HOLDOUT, why, rule.channels[0])
        return None
    return item


def end_campaign(moment: Moment, rule_id: str) -> None:
    """A goal of the campaign was reached: its pending waves have nothing left to do."""
    campaign = moment.ruleset.campaign(rule_id)[0]
    kept = []
    for timer in moment.state.timers:
        if timer.kind == "wave" and timer.campaign == campaign:
            moment.timers.append(TimerChange(timer.rule_id, "cancelled"))
        else:
            kept.append(timer)
    if len(kept) != len(moment.state.timers):
        moment.state = evolve(moment.state, {"timers": kept})
