"""A synthetic customer applying for products: funnels walked step by step, abandoned, retried.

Drop-offs are what the abandonment rules fire on, so they come with the reasons real
funnels lose people at each kind of step (documents, offers, anything else).
"""

from __future__ import annotations

import bisect

from app.synthetic.app_use import AppUse
from app.synthetic.catalogue import DOCUMENT_STEPS, FUNNEL_LIST, OFFER_STEPS, REASON_BY_STEP, Funnel
from app.synthetic.state import DISBURSE, HOUR, MINUTE, RETRY
from schemas.events import DropOff


class Applications(AppUse):
    """Application funnels in the app; a completed personal loan is paid out later."""

    __slots__ = ()

    def _start_application(self, t: float) -> None:
        """Open one of the tier's usual applications."""
        index = bisect.bisect(self.funnel_cum, self.rng.random() * self.funnel_cum[-1])
        self._funnel(t, FUNNEL_LIST[index], attempt=1)

    def _retry(self, t: float, funnel: Funnel, attempt: int) -> None:
        """Come back to an abandoned application, once any flow in progress is done."""
        if t < self.busy_until:
            later = self.busy_until + self.rng.uniform(60, 900)
            self._schedule(later, RETRY, funnel, attempt)
        else:
            self._funnel(t, funnel, attempt=attempt)

    def _funnel(self, t: float, funnel: Funnel, attempt: int) -> None:
        """Walk an application funnel until the customer gives up or completes it."""
        rng = self.rng
        session_id, platform = self._new_session()
        self._click(t, funnel.entry_screen, session_id, platform, "apply")
        total = len(funnel.steps)
        for step, (name, drop_p) in enumerate(zip(funnel.steps, funnel.drop_p, strict=True), 1):
            slow = name in DOCUMENT_STEPS
            t += 15.0 + rng.expovariate(1 / (240.0 if slow else 70.0))
            self._click(t, funnel.name, session_id, platform, name)
            if rng.random() < drop_p:
                self._drop_off(t, funnel, step, total, name, attempt)
                return
        t += 5.0 + rng.expovariate(1 / 20)
        self._click(t, f"{funnel.name}_completed", session_id, platform, "submitted")
        self.busy_until = t
        if funnel.name == "personal_loan_application":
            low, high = {"mass": (3_000, 25_000), "affluent": (10_000, 60_000)}.get(
                self.tier, (20_000, 90_000)
            )
            cents = int(rng.uniform(low, high) / 100) * 10_000  # loans are round amounts
            self._schedule(t + rng.uniform(10 * MINUTE, 6 * HOUR), DISBURSE, number=cents)

    def _drop_off(
        self, t: float, funnel: Funnel, step: int, total: int, step_name: str, attempt: int
    ) -> None:
        """Leave the funnel at ``step``; some customers come back later and try again."""
        rng = self.rng
        group = (
            "documents"
            if step_name in DOCUMENT_STEPS
            else "offer"
            if step_name in OFFER_STEPS
            else "other"
        )
        reasons, cum = REASON_BY_STEP[group]
        reason = reasons[bisect.bisect(cum, rng.random() * cum[-1])]
        # A timeout is only noticed when the session expires; the others are immediate.
        t += rng.uniform(15 * MINUTE, 30 * MINUTE) if reason == "timeout" else rng.uniform(5, 90)
        occurred_at = self._time(t)
        drop = DropOff(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            flow=funnel.name,
            step=step,
            steps_total=total,
            reason=reason,
        )
        self._emit(t, drop, occurred_at)
        self.busy_until = t
        if attempt < 3 and rng.random() < 0.3:
            self._schedule(t + rng.uniform(30 * MINUTE, 8 * HOUR), RETRY, funnel, attempt + 1)
