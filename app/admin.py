"""Topic creation: explicit partition counts and compaction, before any worker starts.

Faust would auto-create input topics with its defaults, but co-partitioning with the
state changelog requires every input to have the same partition count, so we create them
deliberately (the compose stack does the same with a one-shot init service).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from app.topics import TopicNames
from schemas.errors import ConfigurationError

log = logging.getLogger(__name__)


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
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kairos-admin")
            break
        except (KafkaConnectionError, KafkaError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        wanted = [*topics.inputs, *topics.outputs, topics.rules, topics.rm_requests]
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
                log.error("Could not create topic %s: %s", topic.name, exc)
                raise
        return created
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
