"""The rules registry's logic: deployed ruleset versions, the live pointer, and rule diffs.

Marketing ops launch and stop campaigns by deploying rule files, not by asking engineers to
restart workers. ``kairos rules deploy`` validates the files, then publishes them as a
:class:`~schemas.deployment.RulesetBundle` followed by a
:class:`~schemas.deployment.LivePointer` on the compacted ``<prefix>.rules`` topic; every
worker follows that topic (``agents/rules_watcher.py``) and swaps the live version in
between two events. Kafka is the registry because the workers already depend on it: no
extra database to run, and the topic is also the audit trail of who deployed what.

This module is the part both sides share and that needs no broker: compiling rule files and
bundles exactly as a worker does, reading the topic's records into a :class:`Registry`,
choosing a rollback target, and comparing two rulesets rule by rule. The Kafka I/O — the
synchronous side used by the CLI and by worker start-up — is ``app/kafka/rules_topic.py``;
the worker's follower is ``agents/rules_watcher.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from rules.errors import DeploymentError, RollbackError, RuleFileError
from rules.language.loader import compile_sources, read_sources
from rules.ruleset import CompiledRule, Ruleset
from schemas.deployment import LivePointer, PointerAction, RulesetBundle

__all__ = [
    "BUNDLE_KEY_PREFIX",
    "LIVE_KEY",
    "Registry",
    "RuleChange",
    "RulesetDiff",
    "bundle_key",
    "checked_rollback_target",
    "compile_bundle",
    "compile_files",
    "diff_rulesets",
    "relative_names",
    "version_conflicts",
]

log = logging.getLogger(__name__)

#: Message key of the live pointer on the rules topic.
LIVE_KEY = "live"
#: Message-key prefix of a version's bundle on the rules topic.
BUNDLE_KEY_PREFIX = "bundle:"


def bundle_key(version: str) -> str:
    """Message key of one version's bundle: distinct per version, so compaction keeps all."""
    return f"{BUNDLE_KEY_PREFIX}{version}"


# --------------------------------------------------------------------------- bundles


def relative_names(root: Path, sources: Mapping[str, str]) -> dict[str, str]:
    """Re-key ``rules.language.loader.read_sources`` output by file name relative to ``root``.

    A bundle must not carry the deploying laptop's directory layout: problem messages on a
    worker then name ``loans/dropoff.yaml``, which ops recognise, not ``/home/jane/...``.
    ``root`` may be a single rule file, whose name is then its base name.
    """
    base = root.parent if root.is_file() else root
    return {Path(name).relative_to(base).as_posix(): text for name, text in sources.items()}


def compile_files(path: Path) -> tuple[dict[str, str], Ruleset]:
    """Read and compile the rule files under ``path`` exactly as a worker will compile them.

    The ruleset is compiled from the relative names that go into the bundle, so the version
    published is the version workers compute. Problems are reported with the real paths,
    which is what ops can open in an editor.

    Raises:
        RuleFileError: every problem found, located by file, line and column.

    """
    path = Path(path)
    sources = read_sources(path)
    files = relative_names(path, sources)
    try:
        return files, compile_sources(files)
    except RuleFileError as exc:
        real = dict(zip(files, sources, strict=True))
        raise RuleFileError(
            [replace(p, file=real.get(p.file, p.file)) for p in exc.problems]
        ) from exc


def compile_bundle(bundle: RulesetBundle) -> Ruleset:
    """Compile a deployed bundle.

    The compiled version can differ from the bundle's when this worker's rule compiler is
    newer than the deploying CLI (a new rule field with a default changes the content hash).
    The bundle still means the same rules, so we run it and say so.

    Raises:
        RuleFileError: the bundle does not compile with this version of Kairos.

    """
    ruleset = compile_sources(bundle.files)
    if ruleset.version != bundle.version:
        log.warning(
            "Bundle %s compiles to version %s with this Kairos version; running it as deployed",
            bundle.version,
            ruleset.version,
        )
    return ruleset


# --------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """What the rules topic holds: every stored bundle and the live pointers seen, in order.

    After compaction only the newest pointer survives, which is why each pointer carries
    the version it replaced: rollback never depends on the older pointers.
    """

    bundles: dict[str, RulesetBundle] = field(default_factory=dict)
    history: list[LivePointer] = field(default_factory=list)

    @property
    def pointer(self) -> LivePointer | None:
        return self.history[-1] if self.history else None

    @property
    def live(self) -> str | None:
        """The version workers must run; None when nothing was ever deployed."""
        return self.pointer.version if self.pointer else None

    def add(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the rules topic, in offset order.

        A malformed record is logged and skipped rather than raised: compaction would keep
        it forever, and one bad record must not block every later deploy and worker start.
        A tombstone (no value) removes a bundle, for purging a version on purpose.
        """
        name = key.decode("utf-8", errors="replace") if key is not None else ""
        try:
            if name == LIVE_KEY and value is not None:
                self.history.append(LivePointer.model_validate_json(value))
            elif name.startswith(BUNDLE_KEY_PREFIX):
                version = name.removeprefix(BUNDLE_KEY_PREFIX)
                if value is None:
                    self.bundles.pop(version, None)
                else:
                    self.bundles[version] = RulesetBundle.model_validate_json(value)
            else:
                log.warning("Ignoring a record with unexpected key %r on the rules topic", name)
        except ValidationError as exc:
            log.error("Ignoring a malformed %r record on the rules topic: %s", name, exc)

    def bundle(self, version: str) -> RulesetBundle:
        """The stored bundle of ``version``, or a :class:`DeploymentError` saying it is gone."""
        try:
            return self.bundles[version]
        except KeyError:
            raise DeploymentError(
                f"version {version} has no bundle on the rules topic (was it deleted?); "
                "deploy its rule files again with 'kairos rules deploy PATH'"
            ) from None

    def compiled(self) -> dict[str, Ruleset]:
        """Every stored version that compiles here, by version (the others are skipped).

        What :func:`version_conflicts` checks a new deploy against: a version this Kairos
        cannot compile cannot run here either, so it has no rule a new one could shadow.
        """
        rulesets = {}
        for version, stored in self.bundles.items():
            try:
                rulesets[version] = compile_bundle(stored)
            except RuleFileError:
                continue
        return rulesets

    def rollback_target(self, to: str | None = None) -> str:
        """The version a rollback makes live: ``to``, or the version the live one replaced.

        Rolling back twice returns to where the first rollback started (like ``kubectl
        rollout undo``): a rollback is itself a change that can be undone. ``to`` reaches any
        stored version instead.

        Raises:
            RollbackError: nothing deployed yet, nothing before the live version, or ``to``
                is not stored or already live.

        """
        pointer = self.pointer
        if pointer is None:
            raise RollbackError(
                "nothing has been deployed yet, so there is nothing to roll back; "
                "workers run their bootstrap rules (KAIROS_RULES_PATH)"
            )
        if to is not None:
            if to == pointer.version:
                raise RollbackError(f"{to} is already live")
            if to not in self.bundles:
                stored = ", ".join(sorted(self.bundles)) or "none"
                raise RollbackError(f"no stored version {to}; stored versions: {stored}")
            return to
        if pointer.previous_version is None:
            raise RollbackError(
                f"{pointer.version} is the first deployed version, so there is no earlier "
                "version to roll back to (the bootstrap rules were never deployed); "
                "deploy the rule files you want with 'kairos rules deploy PATH'"
            )
        if pointer.previous_version not in self.bundles:
            raise RollbackError(
                f"the previous version {pointer.previous_version} has no bundle on the rules "
                "topic; deploy its rule files again with 'kairos rules deploy PATH'"
            )
        return pointer.previous_version

    def next_pointer(self, version: str, action: PointerAction, by: str) -> LivePointer:
        """The pointer that makes ``version`` live now, remembering what it replaces."""
        return LivePointer(
            version=version,
            previous_version=self.live,
            action=action,
            at=datetime.now(UTC),
            by=by,
        )


def checked_rollback_target(registry: Registry, to: str | None = None) -> tuple[str, Ruleset]:
    """The version a rollback would make live, compiled: every check a rollback makes.

    ``kairos rules rollback`` and the console's rollback both call this before publishing,
    so neither can point the workers at a version they would refuse to run.

    Raises:
        RollbackError: no such target (see :meth:`Registry.rollback_target`).
        RuleFileError: the target does not compile with this version of Kairos.

    """
    target = registry.rollback_target(to)
    return target, compile_bundle(registry.bundle(target))


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class RuleChange:
    """A rule present in both rulesets whose content or version differs."""

    rule_id: str
    old_version: int
    new_version: int

    @property
    def bumped(self) -> bool:
        return self.new_version > self.old_version

    @property
    def warning(self) -> str | None:
        """Why this change is suspicious, or None.

        Decisions record the rule version, so the same version meaning two different rules
        makes the audit trail ambiguous.
        """
        if self.new_version == self.old_version:
            return "content changed but version did not; bump 'version:'"
        if self.new_version < self.old_version:
            return "version went down; versions must only grow"
        return None


@dataclass(frozen=True)
class RulesetDiff:
    """What replacing one ruleset by another changes, rule by rule (by id)."""

    old_version: str | None
    new_version: str
    added: tuple[CompiledRule, ...]
    removed: tuple[CompiledRule, ...]
    changed: tuple[RuleChange, ...]
    unchanged: int

    @property
    def warnings(self) -> tuple[RuleChange, ...]:
        return tuple(c for c in self.changed if c.warning)

    def lines(self) -> list[str]:
        """Human-readable lines, one per added, removed or changed rule."""
        out = [f"  + added    {r.id} v{r.version}" for r in self.added]
        out += [f"  - removed  {r.id} v{r.version}" for r in self.removed]
        for change in self.changed:
            text = f"  ~ changed  {change.rule_id} v{change.old_version} -> v{change.new_version}"
            out.append(f"{text}  WARNING: {change.warning}" if change.warning else text)
        if not (self.added or self.removed or self.changed):
            same = self.old_version == self.new_version
            out.append(
                "  no change" if same else "  no rule changed (other parts of the ruleset did)"
            )
        out.append(f"  {self.unchanged} rule(s) unchanged")
        return out


def _content(rule: CompiledRule) -> dict[str, object]:
    """A rule's meaning: its spec without the version number."""
    spec = rule.spec.model_dump(mode="json")
    spec.pop("version", None)
    return spec


def diff_rulesets(old: Ruleset | None, new: Ruleset) -> RulesetDiff:
    """Rules added, removed and changed from ``old`` (None: nothing deployed) to ``new``."""
    before = {r.id: r for r in old.rules} if old else {}
    after = {r.id: r for r in new.rules}
    changed = []
    unchanged = 0
    for rule_id in sorted(before.keys() & after.keys()):
        was, now = before[rule_id], after[rule_id]
        if was.version == now.version and _content(was) == _content(now):
            unchanged += 1
        else:
            changed.append(RuleChange(rule_id, was.version, now.version))
    return RulesetDiff(
        old_version=old.version if old else None,
        new_version=new.version,
        added=tuple(after[i] for i in sorted(after.keys() - before.keys())),
        removed=tuple(before[i] for i in sorted(before.keys() - after.keys())),
        changed=tuple(changed),
        unchanged=unchanged,
    )


def version_conflicts(new: Ruleset, stored: Mapping[str, Ruleset]) -> list[str]:
    """Rules of ``new`` whose ``version:`` would mean two different rules; empty when none.

    Decisions record a rule's id and version, and that pair must name one rule for good:
    a rule whose content changed since its version was deployed, in any version ever
    stored (``stored``: the registry's versions that compile here), must bump its version;
    and a version below one already deployed would make "the latest" ambiguous.
    """
    deployed: dict[tuple[str, int], tuple[str, dict[str, object]]] = {}
    highest: dict[str, int] = {}
    for ruleset_version, ruleset in stored.items():
        for rule in ruleset.rules:
            deployed.setdefault((rule.id, rule.version), (ruleset_version, _content(rule)))
            highest[rule.id] = max(highest.get(rule.id, 0), rule.version)
    conflicts = []
    for rule in new.rules:
        earlier = deployed.get((rule.id, rule.version))
        if earlier is not None and earlier[1] != _content(rule):
            conflicts.append(
                f"rule {rule.id!r} ({rule.source}): its content changed but its version did "
                f"not (v{rule.version} as deployed in {earlier[0]}); bump 'version:'"
            )
        elif earlier is None and rule.version < highest.get(rule.id, 0):
            conflicts.append(
                f"rule {rule.id!r} ({rule.source}): v{rule.version} is below "
                f"v{highest[rule.id]}, already deployed; versions only grow"
            )
    return conflicts
