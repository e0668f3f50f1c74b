"""The deploys page's data: the live ruleset, its history, diffs, and a checked rollback.

Everything comes from the rules topic, read with the same :class:`~app.kafka.RulesTopic`
the ``kairos rules`` commands use, and interpreted by :mod:`rules.deployments`: the page
and the CLI cannot disagree on what is live, what a diff shows or what a rollback may do.
A rollback is checked with :func:`rules.deployments.checked_rollback_target`, the function
``kairos rules rollback`` calls, and published with :meth:`RulesTopic.rollback`.

Reading the topic takes a broker round trip per record batch, so :class:`RegistryReader`
keeps the last read for a few seconds (the pages refresh every few seconds, from several
browsers) and reads again at once after a rollback.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rules.deployments import Registry, compile_bundle, diff_rulesets
from rules.errors import DeploymentError, RuleFileError
from rules.ruleset import Ruleset
from schemas.deployment import LivePointer


class RulesRegistry(Protocol):
    """What the page needs of the rules topic (:class:`app.kafka.RulesTopic` has it)."""

    def read(self) -> Registry: ...

    def rollback(self, registry: Registry, by: str, to: str | None = None) -> LivePointer: ...


@dataclass(frozen=True)
class VersionRow:
    """One stored version: who deployed it, why, what it overrode, which rules it has."""

    version: str
    deployed_at: datetime
    deployed_by: str
    comment: str
    overrides: tuple[str, ...]
    rules: str
    live: bool


@dataclass(frozen=True)
class HistoryRow:
    """One move of the live pointer: a deploy or a rollback."""

    at: datetime
    action: str
    version: str
    previous_version: str | None
    by: str
    comment: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class RuleChangeRow:
    rule_id: str
    old_version: int
    new_version: int
    warning: str | None


@dataclass(frozen=True)
class DiffView:
    """What replacing ``old`` by ``new`` changes: rule by rule, and file by file as text."""

    old: str
    new: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RuleChangeRow, ...] = ()
    unchanged: int = 0
    file_diff: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed or self.file_diff)


class RegistryReader:
    """Reads the registry off the event loop, at most every ``max_age_s`` seconds.

    Bundles never change once stored (a version is its content's hash), so each version is
    compiled once and kept; a version that does not compile keeps its error text instead.
    """

    def __init__(
        self,
        registry: RulesRegistry,
        max_age_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.max_age_s = max_age_s
        self._clock = clock
        self._read: tuple[float, Registry] | None = None
        self._lock = asyncio.Lock()
        self._compiled: dict[str, Ruleset | str] = {}
        self._compile_lock = threading.Lock()

    async def read(self, fresh: bool = False) -> Registry:
        """The registry as last read, or as read now when older than ``max_age_s``.

        Raises:
            DeploymentError: the rules topic cannot be read.

        """
        async with self._lock:
            now = self._clock()
            if fresh or self._read is None or now - self._read[0] > self.max_age_s:
                registry = await asyncio.to_thread(self.registry.read)
                self._read = (self._clock(), registry)
            return self._read[1]

    def forget(self) -> None:
        """The next :meth:`read` goes to the topic (after a rollback)."""
        self._read = None

    def compiled(self, registry: Registry, version: str) -> Ruleset | str:
        """The version compiled, or why it cannot be: its bundle is gone or does not compile."""
        with self._compile_lock:
            known = self._compiled.get(version)
        if known is not None:
            return known
        try:
            result: Ruleset | str = compile_bundle(registry.bundle(version))
        except DeploymentError as exc:
            return str(exc)  # a missing bundle may be published later: not kept
        except RuleFileError as exc:
            result = f"{version} does not compile with this Kairos ({len(exc.problems)} problem(s))"
        with self._compile_lock:
            self._compiled[version] = result
        return result

    def rule_ids(self, registry: Registry, version: str) -> str:
        compiled = self.compiled(registry, version)
        if isinstance(compiled, str):
            return compiled
        return ", ".join(rule.id for rule in compiled.rules)

    def versions(self, registry: Registry) -> list[VersionRow]:
        """Every stored version, newest deploy first."""
        bundles = sorted(registry.bundles.values(), key=lambda b: b.deployed_at, reverse=True)
        return [
            VersionRow(
                version=bundle.version,
                deployed_at=bundle.deployed_at,
                deployed_by=bundle.deployed_by,
                comment=bundle.comment,
                overrides=tuple(bundle.overrides),
                rules=self.rule_ids(registry, bundle.version),
                live=bundle.version == registry.live,
            )
            for bundle in bundles
        ]

    def diff(self, registry: Registry, old: str, new: str) -> DiffView:
        """Any two stored versions compared, as ``kairos rules diff`` compares them."""
        for version in (old, new):
            if version not in registry.bundles:
                return DiffView(old, new, problem=f"no stored version {version}")
        before, after = self.compiled(registry, old), self.compiled(registry, new)
        file_diff = tuple(_file_diff(registry, old, new))
        if isinstance(before, str) or isinstance(after, str):
            problem = before if isinstance(before, str) else str(after)
            return DiffView(old, new, file_diff=file_diff, problem=problem)
        diff = diff_rulesets(before, after)
        return DiffView(
            old,
            new,
            added=tuple(f"{rule.id} v{rule.version}" for rule in diff.added),
            removed=tuple(f"{rule.id} v{rule.version}" for rule in diff.removed),
            changed=tuple(
                RuleChangeRow(c.rule_id, c.old_version, c.new_version, c.warning)
                for c in diff.changed
            ),
            unchanged=diff.unchanged,
            file_diff=file_diff,
        )


def history(registry: Registry) -> list[HistoryRow]:
    """The live pointer's moves, newest first, with each deploy's comment and overrides.

    After compaction the topic keeps only the newest pointer, so older moves are known by
    the bundles' own records (:meth:`RegistryReader.versions`).
    """
    rows = []
    for pointer in reversed(registry.history):
        bundle = registry.bundles.get(pointer.version)
        deploy = pointer.action.value == "deploy"
        rows.append(
            HistoryRow(
                at=pointer.at,
                action=pointer.action.value,
                version=pointer.version,
                previous_version=pointer.previous_version,
                by=pointer.by,
                comment=bundle.comment if bundle and deploy else "",
                overrides=tuple(bundle.overrides) if bundle and deploy else (),
            )
        )
    return rows


def _file_diff(registry: Registry, old: str, new: str) -> list[str]:
    """A unified diff of the two versions' rule files, file by file."""
    before, after = registry.bundles[old].files, registry.bundles[new].files
    lines: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        lines += difflib.unified_diff(
            before.get(name, "").splitlines(),
            after.get(name, "").splitlines(),
            fromfile=f"{old}/{name}" if name in before else "/dev/null",
            tofile=f"{new}/{name}" if name in after else "/dev/null",
            lineterm="",
        )
    return lines
