from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rules.engine import EngineOptions, apply_profile_update, decide
from rules.features import default_bucket
from schemas.codec import decode_event, encode
from schemas.profile import CustomerProfile
from schemas.state import CustomerState
from testkit.factories import click, profile, transaction
from testkit.rulesets import ruleset_from

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

FEATURES = """
features:
  - {name: views_7d, aggregate: count, event: app_click, window: 7d,
     when: 'event.screen == "funds"'}
  - {name: spent_7d, aggregate: sum, event: transaction, value: event.amount, window: 7d,
     when: 'event.direction == "debit"'}
  - {name: avg_balance, aggregate: avg, event: transaction, value: event.balance_after, window: 30d}
  - {name: biggest, aggregate: max, event: transaction, value: event.amount}
  - {name: smallest, aggregate: min, event: transaction, value: event.amount}
  - {name: last_category, aggregate: last, event: transaction, value: event.category}
  - {name: last_visit, aggregate: last_seen, event: app_click}
  - {name: merchants_30d, aggregate: distinct_count, event: transaction, value: event.counterparty,
     window: 30d}
rules:
  - {id: probe, version: 1, event: app_click, channels: [sms], template: t,
     params: {views: "{{ features.views_7d }}", spent: "{{ features.spent_7d }}",
              avg_balance: "{{ features.avg_balance }}", biggest: "{{ features.biggest }}",
              smallest: "{{ features.smallest }}", last_category: "{{ features.last_category }}",
              last_visit: "{{ features.last_visit }}", merchants: "{{ features.merchants_30d }}"}}
"""
RULESET = ruleset_from(FEATURES)
REACHABLE = apply_profile_update(None, CustomerProfile.model_validate(profile("C1")))


def _event(builder: Any, at: datetime, **fields: Any) -> Any:
    return decode_event(json.dumps(builder("C1", occurred_at=at.isoformat(), **fields)).encode())


def _run(
    events: list[Any], options: EngineOptions | None = None
) -> tuple[CustomerState, dict[str, Any]]:
    options = options or EngineOptions()
    state: CustomerState | None = REACHABLE
    params: dict[str, Any] = {}
    for event in events:
        verdict = decide(event, state, RULESET, event.occurred_at, options)
        state = verdict.state
        if verdict.actions:
            params = verdict.actions[-1].params
    assert state is not None
    return state, params


def _probe(at: datetime) -> Any:
    return _event(click, at, screen="home")


def _debit(at: datetime, amount: str, **more: Any) -> Any:
    return _event(
        transaction, at, amount=amount, direction="debit", category="card_purchase", **more
    )


def test_every_aggregate() -> None:
    _, params = _run(
        [
            _event(click, T0, screen="funds"),
            _debit(T0 + timedelta(hours=1), "10.50", counterparty="A", balance_after="100"),
            _debit(T0 + timedelta(hours=2), "30", counterparty="B", balance_after="70"),
            _debit(T0 + timedelta(hours=3), "5", counterparty="A", balance_after=None),
            _probe(T0 + timedelta(hours=4)),
        ]
    )
    assert params["views"] == 1
    assert params["spent"] == pytest.approx(45.5)
    assert params["avg_balance"] == 85  # the transaction without a balance does not count
    assert (params["biggest"], params["smallest"]) == (30, 5)
    assert params["last_category"] == "card_purchase"
    assert params["last_visit"] == T0 + timedelta(hours=4)  # features include the event itself
    assert params["merchants"] == 2


def test_a_sliding_window_forgets_old_events_and_state_stays_bounded() -> None:
    def history(days: int) -> CustomerState:
        events = [
            _debit(T0 + timedelta(days=day), "10", counterparty=f"M{day}") for day in range(days)
        ]
        state, params = _run([*events, _probe(T0 + timedelta(days=days))])
        assert params["spent"] == pytest.approx(70, abs=10)  # 7 days, to one bucket's width
        return state

    month, quarter = history(30), history(90)
    assert len(quarter.features["spent_7d"].buckets) <= 16 + 2
    assert len(encode(quarter)) <= len(encode(month)) + 64  # bounded: no growth with history


def test_a_late_event_lands_in_its_own_bucket() -> None:
    options = EngineOptions(allowed_lateness=timedelta(hours=1))
    _, on_time = _run(
        [_debit(T0, "10"), _debit(T0 + timedelta(days=8), "1"), _probe(T0 + timedelta(days=8))]
    )
    # 8 days later, a purchase from 30 minutes ago arrives: inside lateness, counted.
    late = _debit(T0 + timedelta(days=8) - timedelta(minutes=30), "5")
    _, params = _run(
        [_debit(T0 + timedelta(days=8), "1"), late, _probe(T0 + timedelta(days=8))], options
    )
    assert on_time["spent"] == 1
    assert params["spent"] == 6


def test_an_event_later_than_the_allowed_lateness_is_not_counted() -> None:
    options = EngineOptions(allowed_lateness=timedelta(minutes=10))
    state: CustomerState | None = REACHABLE
    for event in (_debit(T0, "1"), _debit(T0 - timedelta(hours=2), "50")):
        verdict = decide(event, state, RULESET, event.occurred_at, options)
        state = verdict.state
    assert verdict.late
    _, params = _run([_debit(T0, "1"), _debit(T0 - timedelta(hours=2), "50"), _probe(T0)], options)
    assert params["spent"] == 1


def test_a_changed_definition_resets_the_feature() -> None:
    state, _ = _run([_debit(T0, "10")])
    changed = ruleset_from(FEATURES.replace("window: 7d,\n     when", "window: 8d,\n     when"))
    verdict = decide(_probe(T0 + timedelta(minutes=1)), state, changed, T0)
    assert verdict.actions[0].params["spent"] == 0


@pytest.mark.parametrize(
    ("window", "bucket"),
    [
        (timedelta(minutes=30), 300),
        (timedelta(days=7), 12 * 3600),
        (timedelta(days=30), 2 * 86400),
        (timedelta(days=90), 7 * 86400),
    ],
)
def test_default_bucket_is_about_a_sixteenth_of_the_window(window: timedelta, bucket: int) -> None:
    assert default_bucket(window) == bucket


def test_a_feature_view_reads_each_feature_once_and_an_unknown_name_as_none() -> None:
    """``features.x`` compiles to ``FeatureView.get``: the same value as ``view["x"]``."""
    from rules.features import FeatureView

    state = REACHABLE
    for minutes, amount in ((0, "10.00"), (5, "30.00")):
        raw = transaction("C1", amount=amount, direction="debit", category="card_purchase")
        raw["occurred_at"] = (T0 + timedelta(minutes=minutes)).isoformat()
        event = decode_event(json.dumps(raw).encode())
        state = decide(event, state, RULESET, event.occurred_at).state
    at = T0 + timedelta(minutes=10)
    view = FeatureView(RULESET.features, state.features, at)
    fresh = FeatureView(RULESET.features, state.features, at)
    assert view.get("spent_7d") == fresh["spent_7d"] == 40
    assert view.get("biggest") == fresh["biggest"] == 30
    assert view.get("no_such_feature") is None
    assert view.get("no_such_feature", 0) == 0
    assert view.get("spent_7d") is view.get("spent_7d"), "read once, then cached"
