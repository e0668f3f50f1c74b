"""RM capacity: an RM's (or branch's) contacts per working day, shared across partitions.

A customer's partition decides an RM contact optimistically and sends it as a request,
keyed by the RM, to the one worker that owns that RM's daily count (:func:`settle_request`);
that worker grants it, or answers that the day is full, and the customer's partition then
undoes its count and falls back to the next channel or retries the next working day
(:func:`capacity_full`). The live worker and offline replays settle requests the same way.

The customer's own record of the contact (its latest decisions, which ``/customers/{id}``
serves) is kept the same optimistic way, on the customer's partition: the "sent" decision
is remembered in the customer's state when the request is made, in the same state write as
the optimistic count, and a refusal makes the state forget it (:func:`_forget_decision`) as
it records what happened instead. The RM's owner never writes a customer's state (that would
be a second writer on another partition, racing the customer's own), and a grant, the usual
answer, needs no message back. The crash guarantees are the checkpoint's: the state, with the
record, is stored only once the request is acknowledged, and a re-processed input yields the
same request and the same decision id, so the record is neither lost nor doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rules.engine.arbitration import settle
from rules.engine.verdict import ActionTiming, Fired, TimerChange, evidence
from schemas.actions import Action, Channel
from schemas.capacity import RmReply, RmRequest
from schemas.copying import evolve
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.state import DecisionNote

if TYPE_CHECKING:
    from rules.engine.moment import Moment


# -- the customer's side ------------------------------------------------------------------


def needed(moment: Moment, action: Action) -> bool:
    """An RM contact needs the RM's capacity when the policy limits it."""
    return action.channel is Channel.RM and moment.ruleset.policy.rm_capacity is not None


def _capacity_key(moment: Moment) -> str:
    spec = moment.ruleset.policy.rm_capacity
    profile = moment.state.profile
    assert spec is not None and profile is not None
    if spec.per == "branch" and profile.branch_id:
        return f"branch:{profile.branch_id}"
    return f"rm:{profile.rm_id}" if profile.rm_id else f"branch:{profile.branch_id}"


def request(
    moment: Moment, action: Action, decision: Decision, start: Event, due_at: datetime
) -> None:
    """Ask the RM's capacity owner; it emits the action and the decision if granted.

    ``due_at``, when the contact was due, travels with it: the owner times how late it
    leaves, queue included.
    """
    spec = moment.ruleset.policy.rm_capacity
    assert spec is not None
    rule = moment.ruleset.by_id[action.rule_id]
    day, retry_at = moment.ruleset.policy.rm_day(moment.now)
    moment.rm_requests.append(
        RmRequest(
            capacity_key=_capacity_key(moment),
            day=day,
            daily_limit=spec.daily_limit,
            when_full=rule.spec.rm_when_full or spec.when_full,
            retry_at=retry_at,
            due_at=due_at,
            action=action,
            decision=decision,
            start_event=start,
        )
    )


def capacity_full(moment: Moment, reply: RmReply) -> None:
    """The RM's day was full: undo the optimistic count, then fall back or wait a day."""
    rule = moment.ruleset.by_id.get(reply.rule_id)
    start = reply.start_event
    _uncount_contact(moment, reply.rule_id, start.event_id)
    _forget_decision(moment, reply)
    if rule is None or not rule.spec.enabled:
        moment.timers.append(TimerChange(reply.rule_id, "dropped"))
        return
    context = moment.context(start, moment.state.features)
    # a fallback contact left through the RM queue too: late against when it was first due
    timing = ActionTiming("rm_queue", reply.due_at or start.occurred_at)
    item = Fired(rule, context, start, evidence(rule, context), timing=timing)
    kind, _, owner = reply.capacity_key.partition(":")  # "rm:RM7" -> "RM RM7's day is full"
    why = f"{kind.upper()} {owner}'s day is full ({reply.day})"
    if reply.when_full == "next_channel":
        settle(moment, [item], unavailable={Channel.RM: why})
        return
    moment.add_timer(rule.id, start, reply.retry_at, "deferred", "deferred", Channel.RM)
    moment.record(
        item,
        Outcome.DEFERRED,
        Reason.RM_CAPACITY,
        f"{why}; deferred to {reply.retry_at.isoformat()}",
        Channel.RM,
    )


def _uncount_contact(moment: Moment, rule_id: str, trigger_event_id: str) -> None:
    state = moment.state
    contacts = list(state.contacts)
    for index in range(len(contacts) - 1, -1, -1):
        if contacts[index].channel is Channel.RM and contacts[index].rule_id == rule_id:
            del contacts[index]
            break
    rules = dict(state.rules)
    history = rules.get(rule_id)
    if history is not None and history.sent > 0:
        rules[rule_id] = evolve(history, {"sent": history.sent - 1})
    goals = [
        g
        for g in state.goals
        if not (g.rule_id == rule_id and g.start_event.event_id == trigger_event_id)
    ]
    moment.state = evolve(
        state,
        {
            "contacts": contacts,
            "rules": rules,
            "goals": goals,
            "contacts_sent": max(state.contacts_sent - 1, 0),
        },
    )


def _forget_decision(moment: Moment, reply: RmReply) -> None:
    """Drop the refused "sent" decision from the customer's latest decisions.

    A reply from an older worker names no decision: the latest RM contact of the rule is
    the one refused, as for the count (:func:`_uncount_contact`).
    """

    def refused(note: DecisionNote) -> bool:
        if note.outcome is not Outcome.SENT:
            return False
        if reply.decision_id is not None:
            return note.decision_id == reply.decision_id
        return note.rule_id == reply.rule_id and note.channel is Channel.RM

    notes = list(moment.state.recent_decisions)
    for index in range(len(notes) - 1, -1, -1):
        if refused(notes[index]):
            del notes[index]
            moment.state = evolve(moment.state, {"recent_decisions": notes})
            return


# -- the RM's side ----------------------------------------------------------------------------


def counter_key(request: RmRequest) -> str:
    """One counter per RM (or branch) and working day."""
    return f"{request.capacity_key}|{request.day}"


@dataclass(frozen=True)
class RmSettlement:
    """The capacity owner's answer: granted (and the day's new count), or refused."""

    granted: bool
    #: The day's count after this request (unchanged when refused).
    used: int
    #: For the customer's partition when refused.
    reply: RmReply | None = None


def settle_request(request: RmRequest, used: int) -> RmSettlement:
    """Grant the contact within the RM's daily limit, or refuse it to the customer."""
    if used < request.daily_limit:
        return RmSettlement(granted=True, used=used + 1)
    reply = RmReply(
        customer_id=request.action.customer_id,
        rule_id=request.action.rule_id,
        capacity_key=request.capacity_key,
        day=request.day,
        when_full=request.when_full,
        retry_at=request.retry_at,
        due_at=request.due_at,
        decision_id=request.decision.decision_id,
        start_event=request.start_event,
    )
    return RmSettlement(granted=False, used=used, reply=reply)
