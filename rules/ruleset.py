"""Compiled rules and the immutable ruleset the engine evaluates.

A ruleset is built once per deploy and swapped as a whole, so an event is always judged
by exactly one version of the rules and the decision can name it. Rules are indexed by
event type and, where a rule has one, by an equality condition on an event field
(``event.screen == "mortgage_calculator"``): an event only meets the rules that could
match it, so the cost per event grows far slower than the number of rules.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from rules.features import CompiledFeature
from rules.language.expression_types import CompiledExpression
from rules.language.expressions import leading_index_hint
from rules.language.params import Renderer
from rules.language.spec import RuleSpec
from rules.policy import Policy, PolicySpec
from schemas.actions import Channel


@dataclass(frozen=True)
class CompiledPattern:
    """An event type with compiled conditions (``unless`` exits, ``goal``)."""

    event: str
    conditions: tuple[CompiledExpression, ...]


@dataclass(frozen=True)
class CompiledSequence:
    """``after``: the hidden last-seen feature of the earlier event, and how recent it must be."""

    feature: str
    within: timedelta


@dataclass(frozen=True)
class CompiledAbsence:
    """``unless``: how long to wait, and the events that cancel the wait."""

    within: timedelta
    exits: tuple[CompiledPattern, ...]


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate: its spec plus closures built at load time."""

    spec: RuleSpec
    conditions: tuple[CompiledExpression, ...]
    render_params: Renderer
    source: str  # "file:line", for explanations
    after: CompiledSequence | None = None
    unless: CompiledAbsence | None = None
    goal: CompiledPattern | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def channels(self) -> list[Channel]:
        return self.spec.channels

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def ttl(self) -> timedelta:
        return self.spec.ttl

    @cached_property
    def evidence_paths(self) -> tuple[str, ...]:
        """Every path the conditions read, in order of first use (read at every decision)."""
        return tuple(dict.fromkeys(path for c in self.conditions for path in c.paths))

    @cached_property
    def always_active(self) -> bool:
        """No ``start_at`` nor ``end_at``: the engine skips the date checks of most rules."""
        return self.spec.start_at is None and self.spec.end_at is None

    @property
    def index_hint(self) -> tuple[str, frozenset[str]] | None:
        return next((c.index_hint for c in self.conditions if c.index_hint), None)


@dataclass(frozen=True)
class RuleIndex:
    """The rules of one event type: always-candidates plus an equality index."""

    always: tuple[CompiledRule, ...]
    by_field: Mapping[str, Mapping[str, tuple[CompiledRule, ...]]]
    order: Mapping[str, int]
    position: Mapping[int, int] = field(default_factory=dict)  # id(rule) -> file order
    #: With one indexed field (the usual case): its name, and for each of its values the
    #: candidates ``candidates`` would assemble, merged and in file order once, here.
    single: tuple[str, Mapping[str, tuple[CompiledRule, ...]]] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        single = None
        if len(self.by_field) == 1:
            ((name, table),) = self.by_field.items()
            merged = {
                value: tuple(sorted((*self.always, *rules), key=lambda r: self.position[id(r)]))
                if self.always
                else rules
                for value, rules in table.items()
            }
            single = (name, merged)
        object.__setattr__(self, "single", single)

    def candidates(self, event: Any) -> tuple[CompiledRule, ...]:
        single = self.single
        if single is not None:
            value = getattr(event, single[0], None)
            return single[1].get(value, self.always) if isinstance(value, str) else self.always
        if not self.by_field:
            return self.always
        parts = [self.always] if self.always else []
        for name, table in self.by_field.items():
            value = getattr(event, name, None)
            if isinstance(value, str) and value in table:
                parts.append(table[value])
        if len(parts) == 1:
            return parts[0]  # one source: already in file order
        found = [rule for part in parts for rule in part]
        found.sort(key=lambda rule: self.position[id(rule)])
        return tuple(found)


def _index(rules: list[CompiledRule]) -> RuleIndex:
    always: list[CompiledRule] = []
    by_field: dict[str, dict[str, list[CompiledRule]]] = {}
    for rule in rules:
        hint = rule.index_hint
        if hint is None:
            always.append(rule)
            continue
        name, values = hint
        for value in values:
            by_field.setdefault(name, {}).setdefault(value, []).append(rule)
    return RuleIndex(
        always=tuple(always),
        by_field={n: {v: tuple(r) for v, r in t.items()} for n, t in by_field.items()},
        order={rule.id: i for i, rule in enumerate(rules)},
        position={id(rule): i for i, rule in enumerate(rules)},
    )


_EMPTY = RuleIndex((), {}, {})


@dataclass(frozen=True)
class FeatureFeeds:
    """The features one source (an event type, contact outcomes) feeds, indexed like rules.

    Most features of a source start with an equality on one of its fields
    (``event.screen == "mortgage_calculator"``) and so ignore most records; every record
    used to evaluate every feature's first condition to find that out. ``by_value`` maps
    each value of the field ``key`` to the features that may take a record carrying it, in
    declaration order (the order they change the state in); ``others`` serves any other
    text. A record whose ``key`` is not plain text (missing, a number, an enum whose hash
    is not its text's) meets ``every`` feature, exactly as before.
    """

    every: tuple[CompiledFeature, ...]
    key: str | None = None
    by_value: Mapping[str, tuple[CompiledFeature, ...]] = field(default_factory=dict)
    others: tuple[CompiledFeature, ...] = ()

    def for_record(self, record: Any) -> tuple[CompiledFeature, ...]:
        """The features that may change on ``record``; the others return ``None`` for it."""
        if self.key is None:
            return self.every
        value = getattr(record, self.key, None)
        if type(value) is not str:
            return self.every
        return self.by_value.get(value, self.others)


def _feeds(features: tuple[CompiledFeature, ...]) -> FeatureFeeds:
    """Index ``features`` on the field most of them test first (see :class:`FeatureFeeds`).

    Only a feature's *first* condition may be used, and only its leading part: a feature
    skipped for a record must be one whose evaluation would have stopped, false, before
    anything that could raise (a failure is recorded per feature).
    """
    hints = [leading_index_hint(f.conditions[0].source) if f.conditions else None for f in features]
    fields = Counter(hint[0] for hint in hints if hint is not None)
    if not fields:
        return FeatureFeeds(features)
    name = fields.most_common(1)[0][0]
    values = {value for hint in hints if hint is not None and hint[0] == name for value in hint[1]}

    def takes(hint: tuple[str, frozenset[str]] | None, value: str | None) -> bool:
        return hint is None or hint[0] != name or value in hint[1]

    return FeatureFeeds(
        every=features,
        key=name,
        by_value={
            value: tuple(f for f, hint in zip(features, hints, strict=True) if takes(hint, value))
            for value in sorted(values)
        },
        others=tuple(f for f, hint in zip(features, hints, strict=True) if takes(hint, None)),
    )


_MICROSECOND = timedelta(microseconds=1)


def _share_conditions(rules: list[CompiledRule]) -> list[CompiledRule]:
    """One compiled object per distinct (event type, condition text), so results can be memoised."""
    pool: dict[tuple[str, str], CompiledExpression] = {}
    shared = []
    for rule in rules:
        conditions = tuple(
            pool.setdefault((rule.spec.event, c.source.strip()), c) for c in rule.conditions
        )
        shared.append(replace(rule, conditions=conditions))
    return shared


@dataclass(frozen=True)
class Ruleset:
    """All rules and features, indexed by the event type that triggers or feeds them."""

    version: str
    rules: tuple[CompiledRule, ...]
    features: Mapping[str, CompiledFeature] = field(repr=False)
    features_by_event: Mapping[str, tuple[CompiledFeature, ...]] = field(repr=False)
    by_event_type: Mapping[str, RuleIndex] = field(repr=False)
    by_id: Mapping[str, CompiledRule] = field(repr=False)
    #: Event types that can end an absence wait, so other events skip the timer check.
    exit_event_types: frozenset[str] = frozenset()
    #: The waves that follow up each rule's contacts, by that rule's id.
    waves_after: Mapping[str, tuple[CompiledRule, ...]] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    #: The features whose buckets expire, as (name, feature, window in microseconds, bucket
    #: width in seconds): derived once, because every event checks every one of them.
    windowed: tuple[tuple[str, CompiledFeature, int, int], ...] = field(
        init=False, repr=False, compare=False
    )
    #: ``windowed`` by name, for the features a customer actually holds.
    windowed_by_name: Mapping[str, tuple[CompiledFeature, int, int]] = field(
        init=False, repr=False, compare=False
    )
    #: ``features_by_event``, indexed on a field each source's features test first.
    feeds: Mapping[str, FeatureFeeds] = field(init=False, repr=False, compare=False)
    #: Each candidate tuple the indexes hold, with its rules' ids, by ``id()`` of the tuple
    #: (checked to be that very tuple), for :meth:`rule_ids`.
    _candidate_ids: Mapping[int, tuple[tuple[CompiledRule, ...], tuple[str, ...]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        windowed = tuple(
            (name, f, f.spec.window // _MICROSECOND, f.bucket_seconds)
            for name, f in self.features.items()
            if f.bucket_seconds is not None and f.spec.window is not None
        )
        object.__setattr__(self, "windowed", windowed)
        by_name = {name: (f, window_us, bucket) for name, f, window_us, bucket in windowed}
        object.__setattr__(self, "windowed_by_name", by_name)
        feeds = {source: _feeds(tuple(f)) for source, f in self.features_by_event.items()}
        object.__setattr__(self, "feeds", feeds)
        held = [
            part
            for index in self.by_event_type.values()
            for part in (index.always, *(p for t in index.by_field.values() for p in t.values()))
        ]
        held += [
            p
            for index in self.by_event_type.values()
            if index.single
            for p in index.single[1].values()
        ]
        candidate_ids = {id(part): (part, tuple(rule.id for rule in part)) for part in held}
        object.__setattr__(self, "_candidate_ids", candidate_ids)

    @classmethod
    def build(
        cls,
        rules: list[CompiledRule],
        features: list[CompiledFeature] | None = None,
        hidden_features: list[CompiledFeature] | None = None,
        policy: PolicySpec | None = None,
    ) -> Ruleset:
        """Index the rules and derive a content version, stable across reloads."""
        features = features or []
        payload = {
            "rules": [r.spec.model_dump(mode="json") for r in sorted(rules, key=lambda r: r.id)],
            "features": [f.spec.model_dump(mode="json") for f in features],
            "policy": policy.model_dump(mode="json") if policy else None,
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        every_feature = [*features, *(hidden_features or [])]
        rules = _share_conditions(rules)
        enabled = [r for r in rules if r.spec.enabled]
        grouped: dict[str, list[CompiledRule]] = {}
        waves: dict[str, list[CompiledRule]] = {}
        for rule in enabled:
            if rule.spec.wave is None:
                grouped.setdefault(rule.spec.event, []).append(rule)
            else:  # a wave is not triggered by an event: by its previous wave's contact
                waves.setdefault(rule.spec.wave.after, []).append(rule)
        feeds: dict[str, list[CompiledFeature]] = {}
        for feature in every_feature:
            feeds.setdefault(feature.spec.event, []).append(feature)
        exits = {p.event for r in enabled if r.unless for p in r.unless.exits}
        return cls(
            version=f"rs-{digest[:12]}",
            rules=tuple(rules),
            features={f.name: f for f in every_feature},
            features_by_event={k: tuple(v) for k, v in feeds.items()},
            by_event_type={k: _index(v) for k, v in grouped.items()},
            by_id={r.id: r for r in rules},
            exit_event_types=frozenset(exits),
            waves_after={k: tuple(v) for k, v in waves.items()},
            policy=Policy.from_spec(policy) if policy else Policy(),
        )

    def campaign(self, rule_id: str) -> tuple[str, int]:
        """The campaign a rule belongs to (its first rule's id) and the rule's wave in it."""
        wave, current = 1, self.by_id.get(rule_id)
        seen = {rule_id}
        while current is not None and current.spec.wave is not None:
            previous = current.spec.wave.after
            if previous in seen:  # the loader refuses loops; never spin on one
                break
            seen.add(previous)
            wave, rule_id, current = wave + 1, previous, self.by_id.get(previous)
        return rule_id, wave

    def for_event(self, event: Any) -> tuple[CompiledRule, ...]:
        """The rules that could fire on ``event`` (all others are certain not to)."""
        return self.by_event_type.get(event.event_type, _EMPTY).candidates(event)

    def rule_ids(self, rules: tuple[CompiledRule, ...]) -> tuple[str, ...]:
        """The ids of ``rules`` (what :meth:`for_event` returned), in order.

        Every event's verdict lists the rules it evaluated; most events get one of the
        tuples the indexes hold, whose ids are computed once here.
        """
        held = self._candidate_ids.get(id(rules))
        if held is not None and held[0] is rules:  # the same tuple, not one at its address
            return held[1]
        return tuple([rule.id for rule in rules])

    def rules_for_type(self, event_type: str) -> tuple[CompiledRule, ...]:
        """Every enabled rule triggered by ``event_type``, in file order."""
        order = self.by_event_type.get(event_type, _EMPTY).order
        return tuple(self.by_id[rule_id] for rule_id in sorted(order, key=order.__getitem__))
