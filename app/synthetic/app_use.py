"""A synthetic customer in the bank's app: sessions on a favourite platform, screen views."""

from __future__ import annotations

from app.synthetic.catalogue import SCREENS, Platform
from app.synthetic.state import CustomerState
from schemas.events import AppClick


class AppUse(CustomerState):
    """Sessions and the screens viewed in them; a session keeps the customer busy."""

    __slots__ = ()

    def _click(
        self,
        t: float,
        screen: str,
        session_id: str,
        platform: Platform,
        element: str | None = None,
    ) -> None:
        """Queue an app screen view."""
        occurred_at = self._time(t)
        click = AppClick(
            event_id=self._event_id(),
            customer_id=self.cid,
            occurred_at=occurred_at,
            screen=screen,
            element=element,
            session_id=session_id,
            platform=platform,
        )
        self._emit(t, click, occurred_at)

    def _new_session(self) -> tuple[str, Platform]:
        """A fresh session id and the platform it runs on (usually the favourite one)."""
        self.sessions += 1
        session_id = f"ses-{self.cid}-{self.sessions}"
        roll = self.rng.random()
        platform = self.platforms[0 if roll < 0.85 else 1 if roll < 0.95 else 2]
        return session_id, platform

    def _session(self, t: float) -> None:
        """Browse a few screens; most sessions open on home."""
        rng = self.rng
        session_id, platform = self._new_session()
        count = 1 + min(int(rng.expovariate(0.4)), 11)
        screens = rng.choices(SCREENS, cum_weights=self.screen_cum, k=count)
        if rng.random() < 0.8:
            screens[0] = "home"
        for screen in screens:
            self._click(t, screen, session_id, platform)
            t += 4.0 + rng.expovariate(1 / 25)
        self.busy_until = t
