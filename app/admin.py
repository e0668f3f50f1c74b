"""Topic creation: explicit partition counts and compaction, before any worker starts.

Faust would auto-create input topics with its defaults, but co-partitioning with the
state changelog requires every input to have the same partition count, so we create them
deliberately (the compose stack does the same with a one-shot init service).
"""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from app.topics import TopicNames

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str,
    topics: TopicNames,
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create every Kairos topic that does not exist yet; returns the names created."""
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
        wanted = [*topics.inputs, *topics.outputs]
        missing = [
            NewTopic(
                name=name,
                num_partitions=partitions,
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
