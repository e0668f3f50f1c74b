"""The engine: one input, one customer's state, one ruleset in; decisions and actions out.

Pure and synchronous — no Kafka, no Faust, no clock of its own — so the live worker, the
rule tests and the backtest run exactly the same code. Two clocks, on purpose:

* rules are evaluated in **event time**: windows, sequences and ``now`` in an expression
  are measured from the event's ``occurred_at``;
* ``now`` passed in is the **decision time** (the worker's clock, or the replay clock):
  it stamps ``created_at``, decides expiry and cooldowns, and fires absence timers.

Rules see the event, the profile, ``state`` as it was *before* this event, and
``features`` *including* this event (so "the third view in 7 days" is ``>= 3``).

The parts, one job each::

    dispatcher    every kind of input to its entry point (the drivers' one door)
    entry_points  decide (an event), a timer tick, a profile update, feedback, an RM refusal
    feedback      a channel's report folded into its contact; bounces and unsubscribes
    moment        one call's state and outputs; evaluates rules, records decisions
    arbitration   contact policy, one contact per moment, expiry, holdout, quiet hours
    timers        absence waits, deferred contacts, decision windows
    goals         goals watched after a decision, conversions
    rm_capacity   RM contacts within an RM's daily capacity, on both sides
    windows       features over sliding event-time windows
    consent       which channels may carry a marketing contact
    verdict       options, contexts, the verdict, ids
"""

from rules.engine.dispatcher import CustomerInput, dispatch
from rules.engine.entry_points import (
    apply_feedback,
    apply_profile_update,
    decide,
    fire_due_timers,
    handle_rm_capacity_full,
    update_profile,
)
from rules.engine.rm_capacity import RmSettlement, counter_key, settle_request
from rules.engine.verdict import (
    ACTION_PATHS,
    ActionPath,
    ActionTiming,
    EngineOptions,
    RuleFailure,
    TimerChange,
    Verdict,
    fires_at,
    in_holdout,
)

__all__ = [
    "ACTION_PATHS",
    "ActionPath",
    "ActionTiming",
    "CustomerInput",
    "EngineOptions",
    "RmSettlement",
    "RuleFailure",
    "TimerChange",
    "Verdict",
    "apply_feedback",
    "apply_profile_update",
    "counter_key",
    "decide",
    "dispatch",
    "fire_due_timers",
    "fires_at",
    "handle_rm_capacity_full",
    "in_holdout",
    "settle_request",
    "update_profile",
]
