"""Simulated channel systems for the demo: they receive Kairos's actions and report back.

Feedback answers actions, so it cannot be generated ahead of them: these stand-ins for the
SMS gateway, the push service and the RM desk read each action as it is produced and answer
on ``kairos.feedback`` when the simulated moment of each report comes. What they answer is
the backtest's own response model (:mod:`rules.offline.responses`), so the demo and a
backtest of the same contacts tell the same stories: delivery in seconds, an open in minutes
to hours or never, bounces, unsubscribes, rates by channel, tier and local hour.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kafka import KafkaProducer

from rules.offline.responses import ResponseModel
from schemas.actions import Action
from schemas.codec import encode
from schemas.feedback import Feedback, FeedbackStatus
from schemas.profile import CustomerProfile


class ChannelSimulator(threading.Thread):
    """Answers each action on the feedback topic when its simulated moment comes."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        wall_time_of: Callable[[datetime], float],
        stop: threading.Event,
        counts: Counter[str],
        seed: int,
    ) -> None:
        super().__init__(name="channel-simulator", daemon=True)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self.topic = topic
        self.wall_time_of = wall_time_of
        self.stop = stop
        self.counts = counts
        self.model = ResponseModel(seed=seed)
        #: What the channel systems know of each customer: tier and time zone.
        self._customers: dict[str, tuple[str, ZoneInfo]] = {}
        self._due: list[tuple[float, int, Feedback]] = []
        self._lock = threading.Lock()
        self._sequence = 0

    def know(self, profile: CustomerProfile) -> None:
        """Remember a customer's tier and time zone (called as profiles are produced)."""
        with self._lock:
            self._customers[profile.customer_id] = (profile.tier, ZoneInfo(profile.timezone))

    def answer(self, value: dict[str, Any]) -> None:
        """Plan the channel's reports on one action (called as actions are read)."""
        action = Action.model_validate(value)
        with self._lock:
            tier, zone = self._customers.get(action.customer_id, (None, ZoneInfo("UTC")))
            hour = action.created_at.astimezone(zone).hour
            for report in self.model.answer(action, tier, hour):
                self._sequence += 1
                due = self.wall_time_of(report.occurred_at)
                heapq.heappush(self._due, (due, self._sequence, report))

    def run(self) -> None:
        try:
            while not self.stop.wait(0.2):
                now = time.time()
                with self._lock:
                    ready = []
                    while self._due and self._due[0][0] <= now:
                        ready.append(heapq.heappop(self._due)[2])
                for report in ready:
                    self.producer.send(
                        self.topic, key=report.customer_id.encode(), value=encode(report)
                    )
                    self.counts[f"feedback:{report.status.value}"] += 1
                    if report.status in (FeedbackStatus.FAILED, FeedbackStatus.UNSUBSCRIBED):
                        print(
                            f"  report  {report.channel.value.upper():<4} {report.customer_id:<8} "
                            f"{report.status.value}",
                            flush=True,
                        )
        finally:
            self.producer.flush()
            self.producer.close()
