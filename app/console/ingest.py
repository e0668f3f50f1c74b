"""Following the topics into the console's store, in a consumer group of the console's own.

The console reads what the workers and the channels wrote — decisions, conversions,
channel feedback — plus the profiles (for each customer's time zone) and the rules topic
(for each rule's text and versions), and writes them to :class:`ConsoleStore` batch by
batch. Its consumer is *assigned* every partition of those topics rather than subscribed:
one console reads everything, and joining a group would only add rebalances. Where to start
is the store's business, not the group's: each batch is written with the offsets after it
in one transaction, so on start the follower seeks every partition to the offset the store
holds (the topic's beginning for a partition it never read), and nothing is lost or counted
twice whatever stopped the console. It still commits those offsets to its group after each
batch, so that ``kafka-consumer-groups --describe`` and lag alerts see how far it is.

Bad records never stop it: one that does not decode is counted (``status().skipped``) and
skipped, as ``kairos report`` skips a malformed channel report; nothing of its content is
logged, since it may carry a customer id.

The consumer is kafka-python's (synchronous), in a thread of its own: the console's web
server stays free of it, and :meth:`Follower.catch_up` serves tests and the console's start
with the same code as the thread. End offsets come from fetch responses (high-water marks),
which Tansu reports correctly, unlike ``ListOffsets`` (docs: the embedded broker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from app.console.store import Batch, ConsoleStore
from rules.deployments import BUNDLE_KEY_PREFIX, LIVE_KEY
from schemas.codec import decode_feedback, decode_profile, parse_as
from schemas.conversions import Conversion
from schemas.decisions import Decision
from schemas.deployment import LivePointer, RulesetBundle
from schemas.errors import InvalidEventError
from schemas.topics import TopicNames

__all__ = ["Follower", "Record", "add_record", "console_topics"]

log = logging.getLogger(__name__)

#: Tansu holds a fetch open this long even while data is there (docs: the embedded broker).
_FETCH_MAX_WAIT_MS = 100
_POLL_MS = 200
#: How often the topics' partitions are looked up again (a topic created after the start).
_REFRESH_S = 10.0
#: Pause after a failure (broker away, store unwritable) before trying again.
_RETRY_S = 1.0


def console_topics(topics: TopicNames) -> list[str]:
    """The topics the console follows, in the order a batch applies them."""
    return [topics.decisions, topics.conversions, topics.feedback, topics.profile, topics.rules]


class Record(Protocol):
    """What is read of a topic's record (kafka-python's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def add_record(batch: Batch, record: Record, topics: TopicNames) -> None:
    """Decode one record of the console's topics into ``batch``, or count it as skipped.

    Decisions and conversions are the workers' own output, parsed as ``kairos report``
    parses them; channel feedback is validated as the worker validates it (without the key
    check: the report does not check it either). A profile's tombstone erases the
    customer's time zone, a bundle's tombstone the version; live pointers are only checked.
    """
    batch.records += 1
    topic, value, key = record.topic, record.value, record.key
    try:
        if topic == topics.profile:
            customer_id = key.decode() if key is not None else None
            if value is not None:
                profile = decode_profile(value, key)
                batch.profiles.append((profile.customer_id, profile))
            elif customer_id:
                batch.profiles.append((customer_id, None))
            else:
                batch.skipped += 1
        elif topic == topics.rules:
            _add_rules_record(batch, key, value)
        elif value is None:
            batch.skipped += 1
        elif topic == topics.decisions:
            batch.decisions.append(parse_as(Decision, value))
        elif topic == topics.conversions:
            batch.conversions.append(parse_as(Conversion, value))
        elif topic == topics.feedback:
            batch.feedback.append(decode_feedback(value))
        else:
            batch.skipped += 1
    except (ValidationError, InvalidEventError, UnicodeDecodeError) as exc:
        batch.skipped += 1
        log.warning(
            "Console follower: skipped an undecodable record at %s[%d]@%d (%s)",
            topic,
            record.partition,
            record.offset,
            type(exc).__name__,
        )


def _add_rules_record(batch: Batch, key: bytes | None, value: bytes | None) -> None:
    """Bundles (and their tombstones); live pointers are read and not kept."""
    name = key.decode() if key is not None else ""
    if name.startswith(BUNDLE_KEY_PREFIX):
        version = name.removeprefix(BUNDLE_KEY_PREFIX)
        bundle = None if value is None else RulesetBundle.model_validate_json(value)
        batch.bundles.append((version, bundle))
    elif name == LIVE_KEY and value is not None:
        LivePointer.model_validate_json(value)  # a malformed one counts as skipped
    else:
        batch.skipped += 1


class Follower:
    """Reads the console's topics into ``store``, from where the store stopped.

    ``catch_up(timeout)`` reads until every partition's end; ``start()`` keeps following in
    a background thread until ``stop()``. A batch is at most ``max_batch`` records, or what
    arrived within ``batch_wait_s``: big batches while catching up (fewer transactions),
    small ones a few hundred milliseconds behind the topics once caught up.
    """

    def __init__(
        self,
        store: ConsoleStore,
        bootstrap: Sequence[str],
        topics: TopicNames,
        group_id: str,
        *,
        client_id: str = "kairos-console",
        max_batch: int = 5000,
        batch_wait_s: float = 1.0,
    ) -> None:
        self.store = store
        self.bootstrap = list(bootstrap)
        self.topics = topics
        self.group_id = group_id
        self.client_id = client_id
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self._names = console_topics(topics)
        self._consumer: KafkaConsumer | None = None
        self._assigned: list[TopicPartition] = []
        self._refreshed_at = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- public

    def catch_up(self, timeout: float) -> bool:
        """Read until the store holds every record up to the topics' ends; False on timeout.

        The ends are those the broker reported while reading; records written meanwhile may
        be read too. A broker that cannot be reached makes it return False at ``timeout``
        rather than raise: the console serves what its store holds, with the lag unknown.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._lock:
                    read = self._step()
                    if read == 0 and self._at_end():
                        return True
            except KafkaError as exc:
                log.warning("Console follower: the broker failed (%s); retrying", exc)
                self._discard_consumer()
                time.sleep(min(_RETRY_S, max(0.0, deadline - time.monotonic())))
            if time.monotonic() > deadline:
                return False

    def start(self) -> None:
        """Follow the topics in a background thread (a daemon: it never holds up exit)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="console-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following: the batch in hand is written, then the consumer is closed."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            self._discard_consumer()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    self._step()
            except Exception as exc:  # the follower outlives any one failure
                log.warning("Console follower: %s: %s; retrying", type(exc).__name__, exc)
                with self._lock:
                    self._discard_consumer()
                self._stopping.wait(_RETRY_S)

    def _step(self) -> int:
        """Read one batch (possibly empty) and write it; the number of records read."""
        consumer = self._connected()
        if time.monotonic() - self._refreshed_at > _REFRESH_S:
            self._assign(consumer)
        batch = Batch()
        if self._assigned:
            deadline = time.monotonic() + self.batch_wait_s
            while batch.records < self.max_batch and not self._stopping.is_set():
                polled = consumer.poll(
                    timeout_ms=_POLL_MS, max_records=self.max_batch - batch.records
                )
                for partition, records in polled.items():
                    for record in records:
                        add_record(batch, record, self.topics)
                    batch.offsets[(partition.topic, partition.partition)] = records[-1].offset + 1
                if not polled or time.monotonic() > deadline:
                    break
        if batch.records:
            try:
                self.store.write(batch)
            except Exception:
                self._seek_to_store(consumer, self._assigned)  # read the batch again later
                raise
            self._commit(consumer, batch.offsets)
        self.store.set_lag(self._lag(consumer))
        return batch.records

    # ----------------------------------------------------------------- the consumer

    def _connected(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # an offset the topic's retention dropped
                allow_auto_create_topics=False,  # the rules topic must be created compacted
                fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
                bootstrap_timeout_ms=5000,
            )
            self._assigned = []
            self._refreshed_at = 0.0
        return self._consumer

    def _discard_consumer(self) -> None:
        """Close the consumer; the next step makes a new one and seeks from the store."""
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # closing a consumer whose broker vanished
                log.debug("Console follower: closing the consumer failed: %s", exc)
            self._consumer = None
            self._assigned = []

    def _assign(self, consumer: KafkaConsumer) -> None:
        """Take every partition of the topics; a new one starts where the store says."""
        self._refreshed_at = time.monotonic()
        partitions = [
            TopicPartition(topic, number)
            for topic in self._names
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        new = [p for p in partitions if p not in self._assigned]
        if not new:
            return
        consumer.assign(partitions)
        self._assigned = partitions
        self._seek_to_store(consumer, new)

    def _seek_to_store(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        stored = self.store.offsets()
        for partition in partitions:
            offset = stored.get((partition.topic, partition.partition))
            if offset is None:
                consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, offset)

    def _commit(self, consumer: KafkaConsumer, offsets: dict[tuple[str, int], int]) -> None:
        """Tell the group how far the store is; only for lag tools (the store is the truth)."""
        try:
            consumer.commit(
                {
                    TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                    for (topic, partition), offset in offsets.items()
                },
                timeout_ms=5000,
            )
        except KafkaError as exc:
            log.warning("Console follower: could not commit offsets to %s: %s", self.group_id, exc)

    def _at_end(self) -> bool:
        """Every partition's position has reached the high-water mark its fetch reported."""
        consumer = self._consumer
        if consumer is None:
            return False
        for partition in self._assigned:
            highwater = consumer.highwater(partition)
            if highwater is None or consumer.position(partition) < highwater:
                return False
        return True

    def _lag(self, consumer: KafkaConsumer) -> int | None:
        """Records between the positions and the high-water marks; None before they are known."""
        total = 0
        for partition in self._assigned:
            highwater = consumer.highwater(partition)
            if highwater is None:
                return None
            total += max(0, highwater - consumer.position(partition))
        return total
