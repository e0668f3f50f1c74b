"""The engine's entry points: an event, a timer tick, a profile update, an RM refusal.

Each builds one :class:`~rules.engine.moment.Moment` for the customer, lets the engine's
parts act on it in a fixed order, and returns its :class:`~rules.engine.verdict.Verdict`.
"""

from __future__ import annotations

from datetime import datetime

from rules.engine import arbitration, goals, outcomes, rm_capacity, timers
from rules.engine import feedback as feedback_part
from rules.engine.moment import Moment
from rules.engine.verdict import DEFAULT_OPTIONS, EngineOptions, Fired, Verdict, evidence
from rules.engine.windows import update_features
from rules.ruleset import CompiledRule, Ruleset
from rules.state_update import apply_profile, event_fingerprint, event_update, new_state
from schemas.capacity import RmReply
from schemas.copying import evolve
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.state import CustomerState


def decide(
    event: Event,
    state: CustomerState | None,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Verdict:
    """Evaluate ``event`` for its customer: end waits it answers, fire due waits, then rules."""
    if state is None:
        state = new_state(event.customer_id)
    fingerprint = event_fingerprint(event)
    if fingerprint in state.recent_event_ids:  # a re-delivery (is_duplicate, hashed once)
        return Verdict(state=state, duplicate=True)
    moment = Moment(state, ruleset, now, options.timer_grace)
    # Each part returns at once without contacts, goals or timers, as most customers have
    # none: the checks are made here so that most events pay no call for them.
    if state.contacts:
        outcomes.settle_ignored(moment)
    if moment.state.goals:
        goals.check(moment, event)
    if moment.state.timers:
        timers.cancel_waits(moment, event)
        timers.fire_due(moment)

    watermark_cap = now + options.max_future_skew
    features, too_late = update_features(
        ruleset, moment.state, event, options, watermark_cap, moment.failures
    )
    candidates = ruleset.for_event(event)
    if candidates:  # most events meet no rule: no context to build for them
        fired: list[Fired] = []
        context = moment.context(event, features)
        occurred_at = event.occurred_at
        for rule in candidates:
            if not (rule.always_active or _active(rule, occurred_at)):
                continue
            if not moment.evaluate(rule, context, event):
                continue
            if rule.unless is not None:
                timers.schedule(moment, rule, event)
                continue
            try:
                seen = evidence(rule, context)
            except Exception as exc:
                moment.rule_failed(Fired(rule, context, event, {}), exc)
                continue
            fired.append(Fired(rule, context, event, seen))
        if fired:
            arbitration.settle_or_wait(moment, fired)
    # apply_event, and the features
    update = event_update(moment.state, event, fingerprint, watermark_cap)
    update["features"] = features
    moment.state = evolve(moment.state, update)
    return moment.verdict(evaluated=ruleset.rule_ids(candidates), late=too_late)


def fire_due_timers(
    state: CustomerState, ruleset: Ruleset, now: datetime, options: EngineOptions = DEFAULT_OPTIONS
) -> Verdict:
    """Fire the customer's timers that are due at ``now`` (a scheduler tick)."""
    moment = Moment(state, ruleset, now, options.timer_grace)
    outcomes.settle_ignored(moment)
    timers.fire_due(moment)
    return moment.verdict()


def update_profile(
    state: CustomerState | None,
    profile: CustomerProfile,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Verdict:
    """Apply a profile update; a consent withdrawal cancels deferred contacts it forbids."""
    moment = Moment(apply_profile_update(state, profile), ruleset, now, options.timer_grace)
    timers.withdraw_deferred(moment)
    return moment.verdict()


def handle_rm_capacity_full(
    state: CustomerState,
    reply: RmReply,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Verdict:
    """An RM contact came back refused for capacity: fall back, or retry the next day."""
    moment = Moment(state, ruleset, now, options.timer_grace)
    rm_capacity.capacity_full(moment, reply)
    return moment.verdict()


def apply_feedback(
    state: CustomerState,
    feedback: Feedback,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Verdict:
    """A channel's report on one of the customer's contacts (see ``rules.engine.feedback``)."""
    moment = Moment(state, ruleset, now, options.timer_grace)
    outcomes.settle_ignored(moment)
    result, after_s = feedback_part.apply(moment, feedback)
    return moment.verdict(feedback=result, feedback_after_s=after_s)


def apply_profile_update(state: CustomerState | None, profile: CustomerProfile) -> CustomerState:
    """Fold a profile update into the state (no rule is triggered by a profile change yet)."""
    return apply_profile(state or new_state(profile.customer_id), profile)


def _active(rule: CompiledRule, at: datetime) -> bool:
    spec = rule.spec
    return (spec.start_at is None or spec.start_at <= at) and (
        spec.end_at is None or at < spec.end_at
    )
