"""Declared features: per-customer aggregates maintained incrementally in event time.

A windowed feature is a handful of time buckets inside the customer's state record
(Faust's windowed tables do not survive recovery reliably, and one record per customer
keeps a decision to one state read). Each event adds to the bucket its ``occurred_at``
falls in — so a late event lands in the right bucket — and buckets older than the window
plus the allowed lateness are dropped, which bounds the state per customer.

A window is read as the buckets that overlap ``[t - window, t]``: the answer is exact to
one bucket's width, which is why the default bucket is about a sixteenth of the window.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rules.language.expression_types import (
    ANY,
    DATETIME,
    NUMBER,
    CompiledExpression,
    Context,
    FieldType,
)
from rules.language.spec import FeatureSpec
from schemas.copying import evolve
from schemas.state import DISTINCT_VALUES_PER_BUCKET, FeatureState

#: Bucket widths a default is chosen from (seconds): nice units, so buckets align to clocks.
_NICE_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
_BUCKETS_PER_WINDOW = 16
_ALL_TIME = 0  # the one bucket of an unwindowed aggregate


def default_bucket(window: timedelta) -> int:
    """The smallest nice bucket width giving at most ~16 buckets per window."""
    wanted = window.total_seconds() / _BUCKETS_PER_WINDOW
    return next((b for b in _NICE_BUCKETS if b >= wanted), _NICE_BUCKETS[-1])


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool):  # the average of a condition is its rate (an open rate)
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        return float(value)
    return None


def _exact(value: float | int) -> Decimal | int:
    if isinstance(value, int) or value.is_integer():
        return int(value)
    return Decimal(repr(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal | float):
        number = float(value)
        if not math.isfinite(number):  # JSON has no infinity: the state would not read back
            raise ValueError("the feature's value is not a finite number")
        return number
    if isinstance(value, datetime):
        return value.isoformat()
    return value


#: ``FeatureState(sig="")``, whose copies :func:`blank_state` hands out.
_BLANK = FeatureState(sig="")
#: Its container defaults, which every copy must get afresh (pydantic copies them per instance).
_BLANK_CONTAINERS = tuple(
    (name, value) for name, value in _BLANK.__dict__.items() if isinstance(value, dict | list)
)


def blank_state(signature: str) -> FeatureState:
    """``FeatureState(sig=signature)``, the same record, for a third of the cost.

    Every customer's first event of a feature builds one; validation would check the
    signature string and deep-copy the empty buckets. This copies a blank record instead
    (with ``sig`` as its only field set, as the constructor leaves it) and gives it
    containers of its own, so that it shares none with the template or another record.
    """
    state = evolve(_BLANK, {"sig": signature})
    values = state.__dict__
    for name, default in _BLANK_CONTAINERS:
        values[name] = copy.deepcopy(default) if default else type(default)()
    return state


@dataclass(frozen=True)
class CompiledFeature:
    """A feature ready to update and read; built once per ruleset."""

    spec: FeatureSpec
    conditions: tuple[CompiledExpression, ...]
    value: CompiledExpression | None
    bucket_seconds: int | None
    signature: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def result_type(self) -> FieldType:
        """The static type rules see for ``features.<name>``."""
        aggregate = self.spec.aggregate
        if aggregate == "last_seen":
            return FieldType(DATETIME)
        if aggregate == "last":
            return self.value.result_type if self.value else FieldType(ANY)
        return FieldType(NUMBER)

    # -- update -------------------------------------------------------------------------

    def update(
        self, current: FeatureState | None, context: Context, occurred_at: datetime
    ) -> FeatureState | None:
        """The feature after one event, or ``None`` when the event does not feed it."""
        for condition in self.conditions:
            if not condition.evaluate(context):
                return None
        state = current if current is not None and current.sig == self.signature else None
        state = state or blank_state(self.signature)
        aggregate = self.spec.aggregate
        raw = self.value.evaluate(context) if self.value is not None else None
        if aggregate == "last_seen":
            if state.last_at is None or occurred_at > state.last_at:
                return evolve(state, {"last_at": occurred_at})
            return None
        if raw is None and self.value is not None:
            return None  # a missing value does not count: avg of known balances, not of nulls
        if aggregate == "last":
            if state.last_at is None or occurred_at >= state.last_at:
                return evolve(state, {"last": _jsonable(raw), "last_at": occurred_at})
            return None
        bucket = self._bucket_of(occurred_at)
        if aggregate == "distinct_count":
            distinct = dict(state.distinct)
            values = distinct.get(bucket, [])
            text = str(_jsonable(raw))
            if text in values or len(values) >= DISTINCT_VALUES_PER_BUCKET:
                return None
            distinct[bucket] = [*values, text]
            return evolve(state, {"distinct": distinct})
        number = 1 if aggregate == "count" else _number(raw)
        if number is None:
            return None
        folded = _fold(aggregate, state.buckets.get(bucket), number)
        if not all(map(math.isfinite, folded)):
            # JSON has no infinity: a state holding one is written as null and cannot be
            # read back, which would stop every later event of the customer.
            raise ValueError(f"feature {self.name} would hold a non-finite number")
        buckets = dict(state.buckets)
        buckets[bucket] = folded
        return evolve(state, {"buckets": buckets})

    def _bucket_of(self, moment: datetime) -> int:
        if self.bucket_seconds is None:
            return _ALL_TIME
        return int(moment.timestamp()) // self.bucket_seconds

    def expire(self, state: FeatureState, horizon: datetime) -> FeatureState:
        """Drop buckets that ended before ``horizon`` (window + lateness behind the newest)."""
        if self.bucket_seconds is None or self.spec.window is None:
            return state
        if not state.buckets and not state.distinct:
            return state
        return self.expire_before(state, self.oldest_bucket(horizon))

    def oldest_bucket(self, horizon: datetime) -> int:
        """The first bucket still inside the window at ``horizon`` (windowed features only)."""
        assert self.bucket_seconds is not None and self.spec.window is not None
        return int((horizon - self.spec.window).timestamp()) // self.bucket_seconds

    def expire_before(self, state: FeatureState, oldest: int) -> FeatureState:
        """Drop buckets before ``oldest``; ``state`` itself when there are none (the usual case)."""
        buckets, distinct = state.buckets, state.distinct
        # min() over the int keys, in C: runs on every feature of every event
        if (not buckets or min(buckets) >= oldest) and (not distinct or min(distinct) >= oldest):
            return state
        return evolve(
            state,
            {
                "buckets": {b: v for b, v in state.buckets.items() if b >= oldest},
                "distinct": {b: v for b, v in state.distinct.items() if b >= oldest},
            },
        )

    # -- read ----------------------------------------------------------------------------

    def _live_buckets(self, keys: Iterator[int], at: datetime) -> Iterator[int]:
        if self.bucket_seconds is None or self.spec.window is None:
            yield from keys
            return
        first = int((at - self.spec.window).timestamp()) // self.bucket_seconds
        last = int(at.timestamp()) // self.bucket_seconds
        yield from (b for b in keys if first <= b <= last)

    def read(self, state: FeatureState | None, at: datetime) -> Any:
        """The feature's value as of ``at``: ``0`` for empty counts, ``None`` when unknown."""
        aggregate = self.spec.aggregate
        if state is None or state.sig != self.signature:
            return 0 if aggregate in ("count", "sum", "distinct_count") else None
        if aggregate == "last_seen":
            return state.last_at
        if aggregate == "last":
            return _exact(state.last) if isinstance(state.last, float) else state.last
        if aggregate == "distinct_count":
            seen: set[str] = set()
            for bucket in self._live_buckets(iter(state.distinct), at):
                seen.update(state.distinct[bucket])
            return len(seen)
        buckets = state.buckets
        if self.bucket_seconds is None or self.spec.window is None:
            return _combine(aggregate, list(buckets.values()))
        first = int((at - self.spec.window).timestamp()) // self.bucket_seconds
        last = int(at.timestamp()) // self.bucket_seconds
        # _live_buckets, without a generator per read: rules read features on most events
        return _combine(aggregate, [v for b, v in buckets.items() if first <= b <= last])


def _fold(
    aggregate: str, current: list[int | float] | None, number: float | int
) -> list[int | float]:
    """Add one value to a bucket's aggregate: [count], [count, sum], [min] or [max]."""
    if aggregate == "count":
        return [(current[0] if current else 0) + 1]
    if aggregate in ("sum", "avg"):
        count, total = current if current else (0, 0)
        return [count + 1, total + number]
    if aggregate == "min":
        return [min(current[0], number) if current else number]
    return [max(current[0], number) if current else number]  # max


def _combine(aggregate: str, parts: list[list[int | float]]) -> Any:
    if aggregate == "count":
        return int(sum(p[0] for p in parts))
    if aggregate == "sum":
        return _exact(sum(p[1] for p in parts)) if parts else 0
    if aggregate == "avg":
        count = sum(p[0] for p in parts)
        return Decimal(repr(sum(p[1] for p in parts))) / Decimal(repr(count)) if count else None
    if not parts:
        return None
    pick = min if aggregate == "min" else max
    return _exact(pick(p[0] for p in parts))


def signature(spec: FeatureSpec) -> str:
    """A short fingerprint of what the feature computes; state from another one is reset."""
    text = spec.model_dump_json(exclude={"description"})
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


#: What :meth:`FeatureView.get` answers for a name no feature declares.
_UNDECLARED = object()


class FeatureView(Mapping[str, Any]):
    """``features.<name>`` as rules see it: computed on first read, then cached.

    Lazy because a rule typically reads one or two of many declared features. Slotted:
    one is built for every event that meets a rule.
    """

    __slots__ = ("_at", "_cache", "_features", "_states")

    def __init__(
        self,
        features: Mapping[str, CompiledFeature],
        states: Mapping[str, FeatureState],
        at: datetime,
    ) -> None:
        self._features = features
        self._states = states
        self._at = at
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        """``features.x`` compiles to attribute access, like every other record."""
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, _UNDECLARED)
        if value is _UNDECLARED:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """``features.x`` as rules read it (``by_key`` in its type): one call, ``None`` if unknown.

        ``Mapping.get`` would call ``__getitem__`` and catch its ``KeyError``, and attribute
        access fails a normal lookup before it reaches ``__getattr__``; a rule reads
        features on most events it meets, and with 100 rules that was a tenth of the time.
        """
        cache = self._cache
        if name in cache:
            return cache[name]
        feature = self._features.get(name)
        if feature is None:
            return default
        value = cache[name] = feature.read(self._states.get(name), self._at)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._features)

    def __len__(self) -> int:
        return len(self._features)
