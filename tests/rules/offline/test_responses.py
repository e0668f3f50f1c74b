"""The simulated channels: believable stories, seeded per action, rates that can be estimated."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from rules.offline.responses import ResponseModel, ResponseRates, estimate
from schemas.actions import Action, Channel
from schemas.feedback import Feedback, FeedbackStatus

_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _action(n: int, channel: Channel) -> Action:
    return Action(
        action_id=f"act-{channel.value}-{n}",
        customer_id=f"C{n}",
        channel=channel,
        rule_id="r",
        rule_version=1,
        ruleset_version="rs-test",
        template="t",
        params={},
        priority=1,
        created_at=_AT,
        expires_at=_AT,
        trigger_event_ids=["e"],
        reason="test",
    )


def _answers(model: ResponseModel, channel: Channel, n: int, **kw: object) -> list[Feedback]:
    tier = kw.get("tier")
    hour = kw.get("hour", 12)
    assert isinstance(hour, int) and (tier is None or isinstance(tier, str))
    return [f for i in range(n) for f in model.answer(_action(i, channel), tier, hour)]


def test_each_story_moves_forward_in_time_and_rates_differ_by_channel() -> None:
    model = ResponseModel(seed=7)
    seen: dict[Channel, Counter[FeedbackStatus]] = {}
    for channel in Channel:
        counts: Counter[FeedbackStatus] = Counter()
        for i in range(5_000):
            story = model.answer(_action(i, channel), "mass", 12)
            times = [f.occurred_at for f in story]
            assert times == sorted(times) and times[0] > _AT
            counts.update(f.status for f in story)
        seen[channel] = counts
    assert 0.25 < seen[Channel.PUSH][FeedbackStatus.OPENED] / 5_000 < 0.35
    assert seen[Channel.PUSH][FeedbackStatus.FAILED] > seen[Channel.SMS][FeedbackStatus.FAILED]
    assert seen[Channel.SMS][FeedbackStatus.UNSUBSCRIBED] > 0
    assert set(seen[Channel.RM]) <= {
        FeedbackStatus.REACHED,
        FeedbackStatus.NOT_REACHED,
        FeedbackStatus.INTERESTED,
        FeedbackStatus.DECLINED,
    }


def test_a_contacts_story_depends_on_the_seed_and_its_action_only() -> None:
    one, same, other = ResponseModel(seed=1), ResponseModel(seed=1), ResponseModel(seed=2)
    action = _action(3, Channel.PUSH)
    assert one.answer(action, None, 12) == same.answer(action, None, 12)
    stories = [
        tuple(f.status for f in m.answer(_action(i, Channel.PUSH), None, 12))
        for m in (one, other)
        for i in range(200)
    ]
    assert stories[:200] != stories[200:]


def test_engagement_rises_with_the_tier_and_falls_at_night() -> None:
    model = ResponseModel(seed=5)

    def engaged(**kw: object) -> int:
        return sum(
            f.status is FeedbackStatus.OPENED for f in _answers(model, Channel.PUSH, 4_000, **kw)
        )

    assert (
        engaged(tier="private", hour=12)
        > engaged(tier="mass", hour=12)
        > engaged(tier="mass", hour=23)
    )


def test_rates_estimated_from_recorded_reports_come_back_close_to_the_truth() -> None:
    truth = ResponseRates(tier_engagement={}, night_engagement=1.0)
    recorded = [
        f for channel in Channel for f in _answers(ResponseModel(truth, seed=3), channel, 6_000)
    ]
    rates = estimate(recorded)
    assert rates.source == f"estimated from {3 * 6_000:,} recorded actions"
    assert rates.push.engaged == pytest.approx(truth.push.engaged, abs=0.02)
    assert rates.push.hard_bounce == pytest.approx(truth.push.hard_bounce, abs=0.01)
    assert rates.push.clicked_after_open == pytest.approx(truth.push.clicked_after_open, abs=0.03)
    assert rates.sms.unsubscribed == pytest.approx(truth.sms.unsubscribed, abs=0.01)
    assert rates.rm.reached == pytest.approx(truth.rm.reached, abs=0.02)
    assert rates.rm.interested == pytest.approx(truth.rm.interested, abs=0.03)
