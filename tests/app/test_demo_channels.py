"""The demo's simulated channels: valid reports, in time order, at believable rates."""

from __future__ import annotations

import random
from collections import Counter

from app.demo.channels import _story
from schemas.feedback import FeedbackStatus


def test_each_story_moves_forward_in_time_and_rates_differ_by_channel() -> None:
    rng = random.Random(7)
    seen: dict[str, Counter[FeedbackStatus]] = {}
    for channel in ("push", "sms", "rm"):
        counts: Counter[FeedbackStatus] = Counter()
        for _ in range(5_000):
            story = _story(channel, rng)
            times = [after for _, after, _ in story]
            assert times == sorted(times) and times[0] > 0
            counts.update(status for status, _, _ in story)
            assert all(
                (failure is not None) == (status is FeedbackStatus.FAILED)
                for status, _, failure in story
            )
        seen[channel] = counts
    opened = seen["push"][FeedbackStatus.OPENED] / 5_000
    assert 0.25 < opened < 0.35
    assert seen["push"][FeedbackStatus.FAILED] > seen["sms"][FeedbackStatus.FAILED]
    assert seen["sms"][FeedbackStatus.UNSUBSCRIBED] > 0
    assert set(seen["rm"]) <= {
        FeedbackStatus.REACHED,
        FeedbackStatus.NOT_REACHED,
        FeedbackStatus.INTERESTED,
    }
