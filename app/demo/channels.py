"""Simulated channel systems for the demo: they receive Kairos's actions and report back.

Feedback answers actions, so it cannot be generated ahead of them: these stand-ins for the
SMS gateway, the push service and the RM desk read each action as it is produced and answer
on ``kairos.feedback`` after a realistic delay in simulated time (delivery in seconds, an
open in minutes to hours, a call within the working day), with seeded rates that differ by
channel: some pushes bounce (an uninstalled app), a few SMS recipients unsubscribe, most
contacts are never opened. Enough for the demo to show the funnel and the campaign waves.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kafka import KafkaProducer

from schemas.codec import encode
from schemas.feedback import Feedback, FeedbackStatus

_MINUTE, _HOUR = 60.0, 3600.0


def _story(channel: str, rng: random.Random) -> list[tuple[FeedbackStatus, float, str | None]]:
    """What happens to one contact: (status, seconds after the contact, failure kind)."""
    if channel == "rm":
        call = rng.uniform(1 * _HOUR, 6 * _HOUR)
        if rng.random() < 0.4:
            return [(FeedbackStatus.NOT_REACHED, call, None)]
        outcome = FeedbackStatus.INTERESTED if rng.random() < 0.35 else FeedbackStatus.REACHED
        return [(outcome, call, None)]
    bounce = 0.03 if channel == "push" else 0.01
    if rng.random() < bounce:
        return [(FeedbackStatus.FAILED, rng.uniform(2, 30), "hard")]
    story: list[tuple[FeedbackStatus, float, str | None]] = [
        (FeedbackStatus.DELIVERED, rng.uniform(2, 30), None)
    ]
    engaged = 0.3 if channel == "push" else 0.15
    if rng.random() < engaged:
        opened = rng.uniform(10 * _MINUTE, 8 * _HOUR)
        first = FeedbackStatus.OPENED if channel == "push" else FeedbackStatus.CLICKED
        story.append((first, opened, None))
        if channel == "push" and rng.random() < 0.4:
            story.append((FeedbackStatus.CLICKED, opened + rng.uniform(10, 5 * _MINUTE), None))
    elif channel == "sms" and rng.random() < 0.01:
        story.append((FeedbackStatus.UNSUBSCRIBED, rng.uniform(1 * _MINUTE, 2 * _HOUR), None))
    elif channel == "push" and rng.random() < 0.2:
        story.append((FeedbackStatus.DISMISSED, rng.uniform(1 * _MINUTE, 4 * _HOUR), None))
    return story


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
        self.rng = random.Random(seed)
        self._due: list[tuple[float, int, Feedback]] = []
        self._lock = threading.Lock()
        self._sequence = 0

    def answer(self, action: dict[str, Any]) -> None:
        """Plan the channel's reports on one action (called as actions are read)."""
        sent = datetime.fromisoformat(action["created_at"])
        with self._lock:
            for status, after, failure in _story(action["channel"], self.rng):
                self._sequence += 1
                report = Feedback(
                    feedback_id=f"sim-{action['action_id']}-{status.value}",
                    action_id=action["action_id"],
                    customer_id=action["customer_id"],
                    channel=action["channel"],
                    status=status,
                    occurred_at=sent + timedelta(seconds=after),
                    failure=failure,  # type: ignore[arg-type]  # "hard" or None, by the story
                )
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
