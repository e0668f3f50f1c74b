"""Offline replay: the live engine over an in-memory state store, with event time as the clock.

Rule tests and backtests run every input through the worker's own dispatcher
(:func:`rules.engine.dispatcher`, and :func:`rules.engine.settle_request` for RM capacity);
only the clock and the store differ. The clock is
the newest event time seen, and timers fire at their moment (``due + grace`` for an
absence wait) — when the live scheduler would have woken the customer — so results do not
depend on wall time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime

from rules.engine import (
    CustomerInput,
    EngineOptions,
    Verdict,
    counter_key,
    dispatch,
    fires_at,
    settle_request,
)
from rules.ruleset import Ruleset
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.state import CustomerState
from schemas.timers import TimerTick


class Replay:
    """Feed profiles and events in order; collect every verdict."""

    def __init__(self, ruleset: Ruleset, options: EngineOptions | None = None) -> None:
        self.ruleset = ruleset
        self.options = options or EngineOptions()
        self.states: dict[str, CustomerState] = {}
        self.clock: datetime | None = None
        self._wake_ups: list[tuple[datetime, str]] = []
        self.rm_counters: dict[str, int] = {}

    def profile(self, profile: CustomerProfile) -> list[Verdict]:
        """Apply a profile update at the current clock (it may cancel deferred contacts)."""
        verdict = self._dispatch(profile, profile.customer_id, self.clock or profile.updated_at)
        assert verdict is not None  # a profile always makes or updates a state
        return [verdict, *self._keep(verdict)]

    def event(self, event: Event) -> list[Verdict]:
        """Advance the clock to the event (firing what fell due before it), then decide."""
        occurred_at = event.occurred_at
        wake_ups = self._wake_ups
        # When nothing falls due, advance() would only move the clock, as the next lines do.
        due = wake_ups and wake_ups[0][0] <= occurred_at
        verdicts = self.advance(occurred_at) if due else []
        now = self.clock if self.clock and self.clock > occurred_at else occurred_at
        self.clock = now
        verdict = self._dispatch(event, event.customer_id, now)
        assert verdict is not None  # an event always makes or updates a state
        verdicts.append(verdict)
        verdicts.extend(self._keep(verdict))
        return verdicts

    def feedback(self, feedback: Feedback) -> list[Verdict]:
        """Advance the clock to the report (firing what fell due before it), then apply it."""
        verdicts = self.advance(feedback.occurred_at)
        now = self.clock or feedback.occurred_at
        verdict = self._dispatch(feedback, feedback.customer_id, now)
        if verdict is not None:
            verdicts.append(verdict)
            verdicts.extend(self._keep(verdict))
        return verdicts

    def advance(self, until: datetime) -> list[Verdict]:
        """Fire, in time order, every timer that falls due up to ``until``."""
        verdicts = []
        grace = self.options.timer_grace
        for fire_at, customer_id in self._due(until):
            state = self.states.get(customer_id)
            # A wake-up is pushed with every verdict of a customer with a timer, so most
            # find nothing due (fired already, or cancelled): such a tick changes nothing
            # and is not kept, and is skipped before a tick is built and dispatched.
            if state is None or not any(fires_at(t, grace) <= fire_at for t in state.timers):
                continue
            tick = TimerTick(customer_id=customer_id, due_at=fire_at)
            verdict = self._dispatch(tick, customer_id, fire_at)
            if verdict is not None and verdict.timers:
                verdicts.append(verdict)
                verdicts.extend(self._keep(verdict))
        if self.clock is None or until > self.clock:
            self.clock = until
        return verdicts

    def _dispatch(self, item: CustomerInput, customer_id: str, now: datetime) -> Verdict | None:
        return dispatch(item, self.states.get(customer_id), self.ruleset, now, self.options)

    def _due(self, until: datetime) -> Iterator[tuple[datetime, str]]:
        while self._wake_ups and self._wake_ups[0][0] <= until:
            yield heapq.heappop(self._wake_ups)

    def _keep(self, verdict: Verdict) -> list[Verdict]:
        """Store the state; settle RM capacity requests at once (one process owns every RM)."""
        self.states[verdict.state.customer_id] = verdict.state
        if verdict.wake_up_at is not None:
            heapq.heappush(self._wake_ups, (verdict.wake_up_at, verdict.state.customer_id))
        followers: list[Verdict] = []
        for request in verdict.rm_requests:
            key = counter_key(request)
            settled = settle_request(request, self.rm_counters.get(key, 0))
            self.rm_counters[key] = settled.used
            customer_id = request.action.customer_id
            if settled.reply is None:
                state = self.states[customer_id]
                followers.append(
                    Verdict(state=state, actions=[request.action], decisions=[request.decision])
                )
                continue
            answer = self._dispatch(
                settled.reply, customer_id, self.clock or settled.reply.retry_at
            )
            if answer is not None:
                followers.append(answer)
                followers.extend(self._keep(answer))
        return followers
