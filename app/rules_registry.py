"""The rules registry: deployed ruleset versions and the live pointer, kept on a Kafka topic.

Marketing ops launch and stop campaigns by deploying rule files, not by asking engineers to
restart workers. ``kairos rules deploy`` validates the files, then publishes them as a
:class:`~schemas.deployment.RulesetBundle` followed by a
:class:`~schemas.deployment.LivePointer` on the compacted ``<prefix>.rules`` topic; every
worker follows that topic (``agents/rules_watcher.py``) and swaps the live version in
between two events. Kafka is the registry because the workers already depend on it: no
extra database to run, and the topic is also the audit trail of who deployed what.

This module is the synchronous side (kafka-python) used by the CLI and by worker start-up,
plus the pure logic both sides share: reading records into a :class:`Registry`, choosing a
rollback target, and comparing two rulesets rule by rule.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from app.admin import TopicAdminError, ensure_topics, wait_for_broker
from app.settings import Settings
from app.topic_reader import TopicReadError, read_to_end
from rules.language.loader import compile_sources, load_ruleset, read_sources
from rules.ruleset import CompiledRule, Ruleset
from schemas.codec import encode
from schemas.deployment import LivePointer, PointerAction, RulesetBundle
from schemas.errors import DeploymentError, RollbackError, RuleFileError
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

LIVE_KEY = "live"
BUNDLE_KEY_PREFIX = "bundle:"
#: How long one registry operation (a read, or creating the topic and publishing) may take
#: before we call the broker unreachable; the ``kairos rules`` commands' ``--timeout``.
READ_TIMEOUT_S = 30.0
#: Tansu holds every fetch open for max-wait even while data arrives; on Kafka it only bounds
#: an idle fetch round, which costs nothing on a topic this small.
_SEND_TIMEOUT_S = 15.0


def bundle_key(version: str) -> str:
    """Message key of one version's bundle: distinct per version, so compaction keeps all."""
    return f"{BUNDLE_KEY_PREFIX}{version}"


def bootstrap_servers(broker_url: str) -> list[str]:
    """``host:port`` list from Faust's broker URL (``kafka://a:9092;kafka://b:9092``).

    kafka-python and aiokafka take bare addresses; Faust's form carries a scheme per URL.
    """
    servers = []
    for part in broker_url.split(";"):
        address = part.strip().split("://", 1)[-1].rstrip("/")
        if address:
            servers.append(address)
    return servers


def whoami() -> str:
    """``user@host`` of the person deploying, for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


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


# --------------------------------------------------------------------------- Kafka


class RulesTopic:
    """Reads and writes the rules topic with kafka-python (synchronous: CLI and start-up)."""

    def __init__(
        self, bootstrap: list[str], topics: TopicNames, timeout: float = READ_TIMEOUT_S
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.name = topics.rules
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float = READ_TIMEOUT_S) -> RulesTopic:
        return cls(
            bootstrap_servers(settings.broker_url), TopicNames(settings.topic_prefix), timeout
        )

    def _unreachable(self, exc: Exception) -> DeploymentError:
        return DeploymentError(
            f"cannot use the rules topic {self.name} on {','.join(self.bootstrap)}: {exc}; "
            "check KAIROS_BROKER_URL and that the broker is up"
        )

    def read(self) -> Registry:
        """Read the whole topic into a :class:`Registry` (see :mod:`app.topic_reader`).

        Raises:
            DeploymentError: the broker is unreachable or the read did not finish in time.

        """
        registry = Registry()
        deadline = time.monotonic() + self.timeout
        try:
            # The reader's consumer would wait kafka-python's 30 s for an absent broker
            # whatever our timeout; the probe makes that wait ours.
            wait_for_broker(self.bootstrap, self.timeout)
            remaining = max(0.0, deadline - time.monotonic())
            for record in read_to_end(self.bootstrap, [self.name], remaining, "kairos-rules"):
                registry.add(record.key, record.value)
        except (TopicAdminError, TopicReadError) as exc:
            raise DeploymentError(f"rules topic {self.name}: {exc}") from exc
        if registry.live is None and not registry.bundles:
            log.info("Rules topic %s is empty or missing: nothing deployed", self.name)
        return registry

    def ensure(self) -> None:
        """Create the topic (compacted, one partition) if it is missing.

        Left to the broker, a consumer's metadata request auto-creates it with the default
        cleanup policy, and time-based retention would later delete the bundles that worker
        start-up and rollback depend on.

        Raises:
            DeploymentError: the broker is unreachable or refuses to create the topic.

        """
        try:
            created = ensure_topics(
                self.bootstrap, self.topics, partitions=1, timeout=self.timeout, only={self.name}
            )
        except TopicAdminError as exc:
            raise DeploymentError(f"rules topic {self.name}: {exc}") from exc
        if created:
            log.info("Created the rules topic %s (compacted, 1 partition)", self.name)

    def publish(self, *records: tuple[str, BaseModel]) -> None:
        """Write ``(key, record)`` pairs in order, each acknowledged before the next.

        Order matters: a worker that sees a pointer must already have seen its bundle, so
        the bundle is acknowledged before the pointer is sent.
        """
        self.ensure()
        timeout_ms = max(1, int(self.timeout * 1000))
        try:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="kairos-rules",
                acks="all",
                bootstrap_timeout_ms=timeout_ms,  # kafka-python waits 30 s and 60 s otherwise
                max_block_ms=timeout_ms,
            )
        except KafkaError as exc:
            raise self._unreachable(exc) from exc
        try:
            for key, record in records:
                producer.send(self.name, key=key.encode(), value=encode(record), partition=0).get(
                    timeout=min(_SEND_TIMEOUT_S, self.timeout)
                )
        except KafkaError as exc:
            raise self._unreachable(exc) from exc
        finally:
            producer.close()

    def deploy(self, bundle: RulesetBundle, registry: Registry) -> LivePointer:
        """Store ``bundle`` and make it live; ``registry`` is what was read just before."""
        pointer = registry.next_pointer(bundle.version, PointerAction.DEPLOY, bundle.deployed_by)
        self.publish((bundle_key(bundle.version), bundle), (LIVE_KEY, pointer))
        return pointer

    def rollback(self, registry: Registry, by: str, to: str | None = None) -> LivePointer:
        """Point live back at the previous (or the given) stored version.

        Raises:
            RollbackError: there is no such version (see :meth:`Registry.rollback_target`).

        """
        target = registry.rollback_target(to)
        pointer = registry.next_pointer(target, PointerAction.ROLLBACK, by)
        self.publish((LIVE_KEY, pointer))
        return pointer


def startup_ruleset(settings: Settings) -> Ruleset:
    """The ruleset a worker starts with: the deployed live version, else the bootstrap rules.

    ``KAIROS_RULES_PATH`` only matters until the first deploy; after that the rules topic is
    the truth, so a restarted worker runs what ops made live, not what the image shipped.

    Raises:
        DeploymentError: the rules topic cannot be read, or its live version does not
            compile with this Kairos version. The worker refuses to start rather than run
            rules ops did not choose.
        RuleFileError: nothing deployed and the bootstrap rules are invalid.

    """
    topic = RulesTopic.from_settings(settings)
    topic.ensure()  # before the rules watcher's consumer would auto-create it wrongly
    registry = topic.read()
    if registry.live is None:
        ruleset = load_ruleset(settings.rules_path)
        log.info(
            "Nothing deployed on %s; using the bootstrap ruleset %s (%d rules) from %s",
            topic.name,
            ruleset.version,
            len(ruleset.rules),
            settings.rules_path,
        )
        return ruleset
    bundle = registry.bundle(registry.live)
    try:
        ruleset = compile_bundle(bundle)
    except RuleFileError as exc:
        raise DeploymentError(
            f"the live ruleset {bundle.version} on {topic.name} does not compile with this "
            f"version of Kairos:\n{exc}\ndeploy fixed rules ('kairos rules deploy PATH') or "
            "roll back ('kairos rules rollback')"
        ) from exc
    log.info(
        "Using the deployed ruleset %s (%d rules) from %s, deployed at %s by %s",
        ruleset.version,
        len(ruleset.rules),
        topic.name,
        bundle.deployed_at.isoformat(),
        bundle.deployed_by,
    )
    return ruleset
