"""A seeded fortnight of synthetic bank traffic through the example pack, offline.

The bank's promises, checked over thousands of decisions: no cap exceeded, no opted-out or
unconsented customer contacted, nothing inside quiet hours, no action id twice — and a
report with treated-versus-holdout conversion for the rules that measure it.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.engine import Verdict
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from rules.offline.report import build_report
from schemas.actions import Action, Channel
from schemas.profile import CustomerProfile


@pytest.fixture(scope="module")
def run() -> tuple[dict[str, CustomerProfile], list[Verdict]]:
    replay = Replay(load_ruleset(EXAMPLE_RULES))
    profiles: dict[str, CustomerProfile] = {}
    verdicts: list[Verdict] = []
    config = SyntheticConfig(seed=11, customers=400, days=14.0)
    for record in traffic(config):
        if isinstance(record.model, CustomerProfile):
            profiles[record.model.customer_id] = record.model
            verdicts.extend(replay.profile(record.model))
        else:
            verdicts.extend(replay.event(record.model))
    verdicts.extend(replay.advance(config.start + timedelta(days=config.days + 1)))
    return profiles, verdicts


def _actions(verdicts: list[Verdict]) -> list[Action]:
    return [a for v in verdicts for a in v.actions]


def test_enough_happens_to_mean_something(
    run: tuple[dict[str, CustomerProfile], list[Verdict]],
) -> None:
    _, verdicts = run
    channels = Counter(a.channel for a in _actions(verdicts))
    assert all(channels[c] >= 5 for c in Channel), channels


def test_no_action_id_twice(run: tuple[dict[str, CustomerProfile], list[Verdict]]) -> None:
    ids = [a.action_id for a in _actions(run[1])]
    assert len(ids) == len(set(ids))


def test_consent_is_absolute(run: tuple[dict[str, CustomerProfile], list[Verdict]]) -> None:
    profiles, verdicts = run
    for action in _actions(verdicts):
        profile = profiles[action.customer_id]
        assert not profile.marketing_opt_out
        assert getattr(profile.consent, action.channel.value)
        if action.channel is Channel.PUSH:
            assert profile.push_enabled


def test_nothing_inside_quiet_hours(run: tuple[dict[str, CustomerProfile], list[Verdict]]) -> None:
    profiles, verdicts = run
    for action in _actions(verdicts):
        if action.channel in (Channel.SMS, Channel.PUSH):
            local = action.created_at.astimezone(ZoneInfo(profiles[action.customer_id].timezone))
            assert 8 <= local.hour < 21, (action.action_id, local)


def test_no_cap_is_exceeded(run: tuple[dict[str, CustomerProfile], list[Verdict]]) -> None:
    profiles, verdicts = run
    per_day: Counter[tuple[str, object]] = Counter()
    push_week: Counter[tuple[str, object]] = Counter()
    any_week: Counter[tuple[str, object]] = Counter()
    for action in _actions(verdicts):
        local = action.created_at.astimezone(ZoneInfo(profiles[action.customer_id].timezone))
        week = local.isocalendar()[:2]
        if action.channel is Channel.SMS:
            per_day[(action.customer_id, local.date())] += 1
        if action.channel is Channel.PUSH:
            push_week[(action.customer_id, week)] += 1
        any_week[(action.customer_id, week)] += 1
    assert max(per_day.values()) <= 1
    assert max(push_week.values()) <= 3
    assert max(any_week.values()) <= 4


def test_the_report_compares_treated_with_holdout(
    run: tuple[dict[str, CustomerProfile], list[Verdict]],
) -> None:
    _, verdicts = run
    decisions = [d for v in verdicts for d in v.decisions]
    conversions = [c for v in verdicts for c in v.conversions]
    reports = {r.rule_id: r for r in build_report(decisions, conversions)}
    nudge = reports["loan-dropoff-digital-nudge"]
    assert nudge.sent > 0 and nudge.held_out > 0
    assert nudge.treated_conversions + nudge.holdout_conversions > 0
    assert nudge.uplift is not None and nudge.uplift_ci95 is not None
    assert sum(r.suppressed_by_reason.get("frequency_cap", 0) for r in reports.values()) > 0
    assert sum(r.deferred for r in reports.values()) > 0
