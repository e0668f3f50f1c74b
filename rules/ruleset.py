"""Compiled rules and the immutable ruleset the engine evaluates.

A ruleset is built once per deploy and swapped as a whole, so an event is always judged
by exactly one version of the rules and the decision can name it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from rules.expressions import CompiledExpression
from rules.params import Renderer
from rules.spec import RuleSpec
from schemas.actions import Channel


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate: its spec plus closures built at load time."""

    spec: RuleSpec
    conditions: tuple[CompiledExpression, ...]
    render_params: Renderer
    source: str  # "file:line", for explanations

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

    @property
    def evidence_paths(self) -> tuple[str, ...]:
        """Every path the conditions read, in order of first use."""
        return tuple(dict.fromkeys(path for c in self.conditions for path in c.paths))


@dataclass(frozen=True)
class Ruleset:
    """All enabled rules, indexed by the event type that triggers them."""

    version: str
    rules: tuple[CompiledRule, ...]
    by_event_type: Mapping[str, tuple[CompiledRule, ...]] = field(repr=False)

    @classmethod
    def build(cls, rules: list[CompiledRule]) -> Ruleset:
        """Index the rules and derive a content version, stable across reloads."""
        digest = hashlib.sha256(
            json.dumps(
                [r.spec.model_dump(mode="json") for r in sorted(rules, key=lambda r: r.id)],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        enabled = [r for r in rules if r.spec.enabled]
        index: dict[str, list[CompiledRule]] = {}
        for rule in enabled:
            index.setdefault(rule.spec.event, []).append(rule)
        return cls(
            version=f"rs-{digest[:12]}",
            rules=tuple(rules),
            by_event_type={k: tuple(v) for k, v in index.items()},
        )

    def for_event(self, event_type: str) -> tuple[CompiledRule, ...]:
        return self.by_event_type.get(event_type, ())
