"""Read whole topics from the beginning to their end, with kafka-python, without a group.

Used by the CLI (rules registry, report). End offsets from ListOffsets are not trusted
(Tansu under-reports them): a partition is done when a fetch response has told us its
high-water mark and our position has reached it, and the reader stops at the first empty
poll after every partition is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from schemas.errors import KairosError

FETCH_MAX_WAIT_MS = 100  # Tansu holds a fetch open this long even while data is there
_POLL_MS = 200


class TopicReadError(KairosError):
    """The broker was unreachable, or a topic could not be read to its end in time."""


def read_to_end(
    bootstrap: Sequence[str], topics: Sequence[str], timeout: float, client_id: str = "kairos-cli"
) -> Iterator[ConsumerRecord]:
    """Every record of ``topics`` (missing topics are empty), partition order preserved.

    Raises:
        TopicReadError: unreachable broker, or the end not reached within ``timeout``.

    """
    deadline = time.monotonic() + timeout
    consumer = _consumer(bootstrap, client_id, deadline)
    try:
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        while True:
            batch = consumer.poll(timeout_ms=_POLL_MS)
            for partition in partitions:
                yield from batch.get(partition, [])
            if not batch and all(_at_end(consumer, p) for p in partitions):
                return
            if time.monotonic() > deadline:
                raise TopicReadError(
                    f"could not read {', '.join(topics)} to the end within {timeout:.0f}s; "
                    "check that the broker is healthy"
                )
    except KafkaError as exc:
        raise TopicReadError(f"cannot read {', '.join(topics)}: {exc}") from exc
    finally:
        consumer.close()


def _at_end(consumer: KafkaConsumer, partition: TopicPartition) -> bool:
    highwater = consumer.highwater(partition)
    return highwater is not None and consumer.position(partition) >= highwater


def _consumer(bootstrap: Sequence[str], client_id: str, deadline: float) -> KafkaConsumer:
    """A group-less consumer, retried until ``deadline``: a broker may still be starting."""
    while True:
        try:
            return KafkaConsumer(
                bootstrap_servers=list(bootstrap),
                client_id=client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise TopicReadError(
                    f"cannot reach the broker at {','.join(bootstrap)}: {exc}; "
                    "check KAIROS_BROKER_URL and that the broker is up"
                ) from exc
            time.sleep(0.5)
