"""The rules topic's I/O: publish and read deployed rulesets with kafka-python.

The synchronous side of the rules registry, used by the ``kairos rules`` commands and by
worker start-up (which version to run first). What a record means, rollback targets and
rule diffs are pure and live in :mod:`rules.deployments`; the worker's follower of the topic
is ``agents/rules_watcher.py``.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel

from app.kafka.admin import TopicAdminError, ensure_topics, wait_for_broker
from app.kafka.topic_reader import TopicReadError, read_to_end
from app.settings import Settings
from rules.deployments import LIVE_KEY, Registry, bundle_key, compile_bundle
from rules.errors import DeploymentError, RuleFileError
from rules.language.loader import load_ruleset
from rules.ruleset import Ruleset
from schemas.codec import encode
from schemas.deployment import LivePointer, PointerAction, RulesetBundle
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

#: How long one registry operation (a read, or creating the topic and publishing) may take
#: before we call the broker unreachable; the ``kairos rules`` commands' ``--timeout``.
READ_TIMEOUT_S = 30.0
#: Tansu holds every fetch open for max-wait even while data arrives; on Kafka it only bounds
#: an idle fetch round, which costs nothing on a topic this small.
_SEND_TIMEOUT_S = 15.0


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
        """Read the whole topic into a :class:`Registry` (see :mod:`app.kafka.topic_reader`).

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
