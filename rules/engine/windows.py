"""Features over sliding event-time windows: fed by each event, expired as time moves on.

Runs on every event, so it is written for speed: the features dict is copied only when
something in it changes, and expiry checks only windowed features, in integer microseconds.
A feature whose conditions or value raise keeps its previous value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic_core import TzInfo

from rules.engine.verdict import EngineOptions, RuleFailure, failure_text
from rules.features import CompiledFeature
from rules.ruleset import Ruleset
from schemas.events import Event
from schemas.state import CustomerState, FeatureState

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: tzinfo types whose offset never changes: ``horizon - window`` is then the same instant
#: as the horizon's minus the window (a zone with DST may shift it by the offset change).
_FIXED_OFFSETS = (timezone, TzInfo)


def expired_features(
    ruleset: Ruleset, features: Mapping[str, FeatureState], horizon: datetime
) -> list[tuple[str, FeatureState | None]]:
    """Features to replace (buckets expired) or drop (``None``: no longer declared).

    The same as calling ``CompiledFeature.expire(state, horizon)`` on every feature, which
    ran on every feature of every event: only windowed features can expire, and with a
    fixed-offset horizon (every parsed event time) the oldest live bucket is computed in
    exact integer microseconds — ``datetime.timestamp()`` is those microseconds divided by
    a million, so the figure is bit-for-bit the same.
    """
    declared = ruleset.features
    windowed = ruleset.windowed_by_name
    changes: list[tuple[str, FeatureState | None]] = []
    horizon_us = (
        (horizon - _EPOCH) // _MICROSECOND if type(horizon.tzinfo) in _FIXED_OFFSETS else None
    )
    # The customer's features rather than every windowed one: a customer has a few. The
    # order of the changes does not matter: each replaces or drops a key of its own.
    for name, value in features.items():
        window = windowed.get(name)
        if window is None:
            if name not in declared:
                changes.append((name, None))  # no longer declared: its state is dead weight
            continue
        buckets, distinct = value.buckets, value.distinct
        if not buckets and not distinct:
            continue
        feature, window_us, bucket = window
        if horizon_us is None:
            oldest = feature.oldest_bucket(horizon)
        else:
            oldest = int((horizon_us - window_us) / 1_000_000) // bucket
        # expire_before()'s own test, inlined: nearly every feature of every event passes it
        if (not buckets or min(buckets) >= oldest) and (not distinct or min(distinct) >= oldest):
            continue
        changes.append((name, feature.expire_before(value, oldest)))
    return changes


class _FeedContext:
    """What a feature's conditions and value read: ``EvaluationContext`` without the memo.

    A plain slotted object, because one is built for nearly every event and a frozen
    dataclass pays ``object.__setattr__`` per field.
    """

    __slots__ = ("now", "roots")

    def __init__(self, roots: Mapping[str, Any], now: datetime) -> None:
        self.roots = roots
        self.now = now


def feed(
    feeds: tuple[CompiledFeature, ...],
    current: dict[str, FeatureState],
    record: Any,
    state: CustomerState,
    occurred_at: datetime,
    failures: list[RuleFailure],
) -> dict[str, FeatureState] | None:
    """``current`` with ``record`` (an event, a contact outcome) fed to ``feeds``.

    ``None`` when no feature changed, so the caller keeps the state's own dict. A feature
    whose conditions or value raise keeps its previous state and is added to ``failures``.
    """
    features: dict[str, FeatureState] | None = None
    context = _FeedContext({"event": record, "profile": state.profile, "state": state}, occurred_at)
    for feature in feeds:
        name = feature.name
        known = features if features is not None else current
        try:
            updated = feature.update(known.get(name), context, occurred_at)
        except Exception as exc:  # e.g. a value that divides by a zero balance
            failures.append(RuleFailure(name, failure_text(exc), kind="feature"))
            continue
        if updated is not None:
            if features is None:
                features = dict(current)
            features[name] = updated
    return features


def update_features(
    ruleset: Ruleset,
    state: CustomerState,
    event: Event,
    options: EngineOptions,
    watermark_cap: datetime,
    failures: list[RuleFailure],
) -> tuple[dict[str, FeatureState], bool]:
    """New feature states after ``event``; ``True`` if the event was too late to count.

    Runs on every event, so the features dict is copied only once something in it changes
    (most events feed one or two features and expire none): the result is then the state's
    own dict, which nothing mutates in place. A feature whose conditions or value raise
    keeps its previous state and is added to ``failures``.
    """
    occurred_at = event.occurred_at
    watermark = state.watermark
    too_late = watermark is not None and occurred_at < watermark - options.allowed_lateness
    current = state.features
    features: dict[str, FeatureState] | None = None
    sources = ruleset.feeds.get(event.event_type)
    if sources is not None and not too_late:
        feeds = sources.for_record(event)
        if feeds:
            features = feed(feeds, current, event, state, occurred_at, failures)
    stamped = occurred_at if occurred_at <= watermark_cap else watermark_cap
    newest = stamped if watermark is None or stamped > watermark else watermark
    horizon = newest - options.allowed_lateness
    known = features if features is not None else current
    changes = expired_features(ruleset, known, horizon)
    if changes:
        if features is None:
            features = dict(current)
        for name, changed in changes:
            if changed is None:
                del features[name]
            else:
                features[name] = changed
    return (features if features is not None else current), too_late
