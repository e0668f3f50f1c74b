"""The engine's expiry shortcut must drop exactly what ``CompiledFeature.expire`` drops."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic_core import TzInfo

from rules.engine.windows import expired_features
from schemas.state import FeatureState
from testkit.rulesets import ruleset_from

RULESET = ruleset_from(
    """
features:
  - {name: views_7d, aggregate: count, event: app_click, window: 7d}
  - {name: spent_30d, aggregate: sum, event: transaction, value: event.amount, window: 30d,
     bucket: 1d}
  - {name: merchants_30d, aggregate: distinct_count, event: transaction,
     value: event.counterparty, window: 30d}
  - {name: biggest, aggregate: max, event: transaction, value: event.amount}
  - {name: last_visit, aggregate: last_seen, event: app_click}
"""
)
T0 = datetime(2026, 3, 29, 0, 30, 0, 250_000, tzinfo=UTC)  # Madrid's spring DST change


def _naive(
    features: dict[str, FeatureState], horizon: datetime
) -> list[tuple[str, FeatureState | None]]:
    """What the engine did before: expire() on every feature, drop the undeclared."""
    changes: list[tuple[str, FeatureState | None]] = []
    for name, value in features.items():
        declared = RULESET.features.get(name)
        if declared is None:
            changes.append((name, None))
        elif (expired := declared.expire(value, horizon)) is not value:
            changes.append((name, expired))
    return changes


def _features(rng: random.Random, horizon: datetime) -> dict[str, FeatureState]:
    features: dict[str, FeatureState] = {}
    for name, feature in RULESET.features.items():
        sig = feature.signature
        if feature.bucket_seconds is None:
            features[name] = FeatureState(sig=sig, buckets={0: [3]})
            continue
        newest = int(horizon.timestamp()) // feature.bucket_seconds
        keys = {newest - rng.randrange(0, 70) for _ in range(rng.randrange(0, 6))}
        if feature.spec.aggregate == "distinct_count":
            features[name] = FeatureState(sig=sig, distinct={k: ["x"] for k in keys})
        else:
            features[name] = FeatureState(sig=sig, buckets={k: [1] for k in keys})
    features["retired_feature"] = FeatureState(sig="old")
    return features


@pytest.mark.parametrize(
    "zone", [UTC, TzInfo(7200), TzInfo(-12_600), ZoneInfo("Europe/Madrid")], ids=str
)
def test_expiry_shortcut_matches_expire_on_every_feature(zone: object) -> None:
    rng = random.Random(6)
    for _ in range(400):
        step = timedelta(seconds=rng.randrange(0, 40 * 86400), microseconds=rng.randrange(10**6))
        horizon = (T0 + step).astimezone(zone)  # type: ignore[arg-type]  # tzinfo variants
        features = _features(rng, horizon)
        # the engine applies the changes by name: their order does not matter
        assert dict(expired_features(RULESET, features, horizon)) == dict(_naive(features, horizon))


def test_windowed_lists_the_features_with_buckets_to_expire() -> None:
    assert [(name, window_us, bucket) for name, _, window_us, bucket in RULESET.windowed] == [
        ("views_7d", 7 * 86400 * 10**6, 43200),
        ("spent_30d", 30 * 86400 * 10**6, 86400),
        ("merchants_30d", 30 * 86400 * 10**6, 172800),
    ]
