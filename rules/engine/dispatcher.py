"""One input dispatcher: whatever reaches a customer's partition, to the right part of the engine.

The live worker (``agents.processor``) and the offline replay (``rules.offline.replay``) both call
:func:`dispatch`, and settle RM requests with :func:`~rules.engine.rm_capacity.settle_request`,
so a backtest decides exactly as the worker does. The drivers supply only I/O: the live one
decodes Kafka messages, reads and writes the state table and produces the outputs; the
offline one keeps states in a dict and moves a replay clock.
"""

from __future__ import annotations

from datetime import datetime

from rules.engine.entry_points import (
    apply_feedback,
    decide,
    fire_due_timers,
    handle_rm_capacity_full,
    update_profile,
)
from rules.engine.verdict import DEFAULT_OPTIONS, EngineOptions, Verdict
from rules.ruleset import Ruleset
from schemas.capacity import RmReply
from schemas.events import Event, EventBase
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.state import CustomerState
from schemas.timers import TimerTick

#: Every input keyed by customer: a profile update, an event, a channel's feedback, a timer
#: tick, an RM refusal.
CustomerInput = CustomerProfile | Event | Feedback | TimerTick | RmReply


def dispatch(
    item: CustomerInput,
    state: CustomerState | None,
    ruleset: Ruleset,
    now: datetime,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Verdict | None:
    """Decide one input for its customer; ``None`` when there is nothing to decide.

    A timer tick, an RM refusal or feedback for a customer without state has nothing to act
    on (the state that scheduled it is gone, e.g. after a data deletion, or never existed).
    """
    if isinstance(item, EventBase):
        return decide(item, state, ruleset, now, options)
    if isinstance(item, CustomerProfile):
        return update_profile(state, item, ruleset, now, options)
    if state is None:
        return None
    if isinstance(item, Feedback):
        return apply_feedback(state, item, ruleset, now, options)
    if isinstance(item, TimerTick):
        return fire_due_timers(state, ruleset, now, options)
    return handle_rm_capacity_full(state, item, ruleset, now, options)
