"""Topic creation: explicit partition counts and compaction, before any worker starts.

Faust would auto-create input topics with its defaults, but co-partitioning with the
state changelog requires every input to have the same partition count, so we create them
deliberately (the compose stack does the same with a one-shot init service).

Every wait here is bounded by the caller's timeout: kafka-python's own defaults (30 s to
bootstrap, 30 s per request) would otherwise make ``kairos topics ensure --timeout 5``
hang for half a minute against a broker that is not there.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from app.errors import ConfigurationError
from schemas.errors import KairosError
from schemas.topics import TopicNames

#: kafka-python's default per-request timeout; a shorter caller timeout lowers it.
_MAX_REQUEST_TIMEOUT_S = 30.0
#: Pause before retrying a bootstrap that failed at once (e.g. a name that does not resolve).
_RETRY_PAUSE_S = 0.2


class TopicAdminError(KairosError):
    """The broker could not be reached in time, or refused a topic operation.

    A runtime failure (exit code 1), not a configuration error: the same command succeeds
    once the broker is up.
    """


class BrokerUnreachableError(TopicAdminError):
    """No broker answered within the time allowed."""


def wait_for_broker(bootstrap: str | Sequence[str], timeout: float) -> None:
    """Return once a broker answers; raise within about ``timeout`` seconds if none does.

    Commands run this before reading topics so that an unreachable broker costs the
    ``--timeout`` asked for and gives one clear line, whatever the client used next.

    Raises:
        BrokerUnreachableError: no broker answered within ``timeout`` seconds.

    """
    _connect(bootstrap, timeout).close()


def _connect(bootstrap: str | Sequence[str], timeout: float) -> KafkaAdminClient:
    """An admin client bootstrapped within ``timeout`` seconds, retried while time remains.

    Raises:
        BrokerUnreachableError: no broker answered in time.

    """
    servers = [bootstrap] if isinstance(bootstrap, str) else list(bootstrap)
    deadline = time.monotonic() + timeout
    request_ms = int(1000 * min(_MAX_REQUEST_TIMEOUT_S, max(1.0, timeout)))
    while True:
        remaining_ms = int(1000 * (deadline - time.monotonic()))
        try:
            return KafkaAdminClient(
                bootstrap_servers=servers,
                client_id="kairos-admin",
                bootstrap_timeout_ms=max(1, remaining_ms),
                request_timeout_ms=request_ms,
            )
        except KafkaError as exc:
            # A KafkaTimeoutError means the bootstrap used the whole remaining time.
            if isinstance(exc, KafkaTimeoutError) or time.monotonic() > deadline:
                raise BrokerUnreachableError(
                    f"cannot reach the broker at {','.join(servers)} within {timeout:g} s: "
                    f"{exc}; check KAIROS_BROKER_URL and that the broker is up"
                ) from exc
            time.sleep(_RETRY_PAUSE_S)


def ensure_topics(
    bootstrap: str | list[str],
    topics: TopicNames,
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
    only: Collection[str] | None = None,
) -> list[str]:
    """Create every Kairos topic that does not exist yet; returns the names created.

    ``partitions`` applies to the co-partitioned data topics; the rules topic always gets
    one partition because every worker reads it whole, in deploy order. ``only`` limits the
    call to some topics: ``kairos rules deploy`` creates the rules topic and nothing else,
    so it can never create input topics with a partition count the workers do not expect.

    Raises:
        BrokerUnreachableError: no broker answered within ``timeout`` seconds.
        TopicAdminError: the broker failed or refused a request (each is bounded by
            ``timeout`` too, capped at kafka-python's 30 s default).
        ConfigurationError: existing topics have another partition count.

    """
    admin = _connect(bootstrap, timeout)
    try:
        existing = set(admin.list_topics())
        wanted = [
            *topics.inputs,
            *topics.outputs,
            topics.rules,
            topics.rm_requests,
            topics.console_audit,
        ]
        if only is not None:
            wanted = [name for name in wanted if name in only]
        _check_partition_counts(admin, topics, partitions, [n for n in wanted if n in existing])
        missing = [
            NewTopic(
                name=name,
                num_partitions=1 if name in topics.single_partition else partitions,
                replication_factor=replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name in topics.compacted else {},
            )
            for name in wanted
            if name not in existing
        ]
        created = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise TopicAdminError(
                    f"could not create topic {topic.name} ({topic.num_partitions} partition(s), "
                    f"replication factor {replication_factor}): {exc}; check "
                    "KAIROS_REPLICATION_FACTOR against the number of brokers"
                ) from exc
        return created
    except KafkaError as exc:  # listing or describing: the broker went away or timed out
        raise TopicAdminError(f"topic administration failed: {exc}") from exc
    finally:
        admin.close()


def _check_partition_counts(
    admin: KafkaAdminClient, topics: TopicNames, partitions: int, names: list[str]
) -> None:
    """Refuse existing topics with another partition count: co-partitioning would break.

    A customer's events, profile and state must land on the same partition number in every
    topic; one topic with a different count silently splits customers across workers.
    """
    if not names:
        return
    wrong = []
    for description in admin.describe_topics(names):
        name = description["name"]
        expected = 1 if name in topics.single_partition else partitions
        actual = len(description["partitions"])
        if actual != expected:
            wrong.append(f"{name} has {actual} partitions, expected {expected}")
    if wrong:
        raise ConfigurationError(
            "existing topics do not match KAIROS_PARTITIONS: "
            + "; ".join(wrong)
            + ". Inputs, outputs and state must be co-partitioned: set KAIROS_PARTITIONS to "
            "the existing count, or migrate the topics (see docs/operations.md)"
        )
