"""Offline replay: the live engine over an in-memory state store, with event time as the clock.

Rule tests and backtests run events through exactly the code the worker runs
(``decide`` and ``fire_due_timers``); only the clock and the store differ. The clock is
the newest event time seen, and timers fire at their moment (``due + grace`` for an
absence wait) — when the live scheduler would have woken the customer — so results do not
depend on wall time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime

from rules.capacity import admits, counter_key, refusal
from rules.engine import (
    EngineOptions,
    Verdict,
    decide,
    fire_due_timers,
    handle_rm_capacity_full,
    update_profile,
)
from rules.ruleset import Ruleset
from schemas.events import Event
from schemas.profile import CustomerProfile
from schemas.state import CustomerState


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
        now = self.clock or profile.updated_at
        state = self.states.get(profile.customer_id)
        verdict = update_profile(state, profile, self.ruleset, now, self.options)
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
        verdict = decide(event, self.states.get(event.customer_id), self.ruleset, now, self.options)
        verdicts.append(verdict)
        verdicts.extend(self._keep(verdict))
        return verdicts

    def advance(self, until: datetime) -> list[Verdict]:
        """Fire, in time order, every timer that falls due up to ``until``."""
        verdicts = []
        for fire_at, customer_id in self._due(until):
            state = self.states.get(customer_id)
            if state is None:
                continue
            verdict = fire_due_timers(state, self.ruleset, fire_at, self.options)
            if verdict.timers:
                verdicts.append(verdict)
                verdicts.extend(self._keep(verdict))
        if self.clock is None or until > self.clock:
            self.clock = until
        return verdicts

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
            used = self.rm_counters.get(key, 0)
            if admits(request, used):
                self.rm_counters[key] = used + 1
                state = self.states[request.action.customer_id]
                followers.append(
                    Verdict(state=state, actions=[request.action], decisions=[request.decision])
                )
            else:
                state = self.states[request.action.customer_id]
                reply = refusal(request)
                answer = handle_rm_capacity_full(
                    state, reply, self.ruleset, self.clock or reply.retry_at, self.options
                )
                followers.append(answer)
                followers.extend(self._keep(answer))
        return followers
