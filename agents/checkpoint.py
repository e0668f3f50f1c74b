"""The worker's state layer: decoded state kept in memory, written once per checkpoint.

Faust's table API costs a full round trip per write — a RocksDB put, a changelog message
sent through Faust's producer buffer with its callbacks and sensors, and a second put for
the persisted offset — and the table hands back bytes that must be decoded again on the
next read. A Kairos worker spent most of its time there. This module keeps Faust for what
it does well (group membership, partition assignment, the changelog topics, recovery and
standbys) and takes the per-message costs out of the data path, in Quix Streams' order:

1. **decide** — every message of a batch is decided on the decoded state held here; a
   customer's later message reads what the earlier one left, and nothing is written yet;
2. **send** — the batch's outputs, then each changed customer's state, encoded once, to
   the table's changelog partition, straight to the producer;
3. **wait for acks** — once, for the whole checkpoint;
4. **store** — only then the changed states and each partition's changelog offset, in one
   RocksDB write batch per partition;
5. **commit** — the batch's input messages are acknowledged to Faust last, which commits
   their offsets at its next commit.

While a checkpoint waits for its acknowledgements, the next batch is decided and sent
(pipelining); one checkpoint at most is in flight, and they complete in order. A crash
anywhere before 5 re-processes the batch with the same deterministic ids, so no contact is
lost and a duplicate carries the same ``action_id``; a stored state that remembers a
message implies its outputs were delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from agents.outputs import Output
from schemas.codec import decode_state, encode_state
from schemas.state import CustomerState

log = logging.getLogger(__name__)

#: Seconds between "still waiting for the broker" warnings.
SLOW_ACK_S = 5.0
#: The longest a checkpoint holds the event loop before it lets the agent and the fetcher
#: run: an event that arrives meanwhile waits at most this long for the checkpoint.
SLICE_S = 0.002

V = TypeVar("V")


@dataclass(frozen=True)
class StateCodec(Generic[V]):
    """How a table's values are stored: bytes in RocksDB and the changelog, ``V`` in memory."""

    decode: Callable[[bytes], V]
    encode: Callable[[V], bytes]


def _same_bytes(value: bytes) -> bytes:
    return bytes(value)


#: A table whose values are used as stored (the RM capacity counters).
RAW_BYTES: StateCodec[bytes] = StateCodec(_same_bytes, _same_bytes)
#: The customer state table: the versioned encoding of ``schemas.codec``.
CUSTOMER_STATES: StateCodec[CustomerState] = StateCodec(decode_state, encode_state)


class PartitionStore(Protocol):
    """The stored side of a table, one RocksDB database per partition."""

    def read(self, partition: int, key: bytes) -> bytes | None:
        """The stored value of ``key`` in ``partition``'s database."""

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes]], offset: int) -> None:
        """Store ``items`` and the changelog ``offset`` they reach, in one write batch."""


class FaustTableStore:
    """A Faust table's RocksDB partitions, written the way Faust's recovery reads them.

    The values and the partition's persisted changelog offset (Faust's ``offset_key``, from
    which recovery and standbys resume) go in one ``rocksdict`` write batch, as Faust's own
    ``apply_changelog_batch`` writes them. ``tests/agents/test_checkpoint_on_faust.py`` fails
    if an upgrade of faust-streaming moves the store methods used here.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.changelog_topic: str = table.changelog_topic.get_topic_name()

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)

    def read(self, partition: int, key: bytes) -> bytes | None:
        value = self._db(partition).get(key)
        return None if value is None else bytes(value)

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes]], offset: int) -> None:
        import rocksdict  # Faust's own RocksDB binding, present with the rocksdb store

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
        batch.put(self.table.data.offset_key, str(offset).encode())
        self._db(partition).write(batch)


class TableState(Generic[V]):
    """A table's values for the partitions this worker decides: decoded, cached, changed.

    A bounded LRU of decoded values (``None`` remembers "nothing stored"), valid while the
    worker keeps its partitions: :meth:`forget` empties it when the consumer generation
    moves, since a rebalance may bring back a partition another worker has written since.
    Changed values are kept until :meth:`take_changes` hands them, encoded, to a checkpoint;
    a value still waiting to be stored is never evicted.
    """

    def __init__(self, store: PartitionStore, codec: StateCodec[V], capacity: int) -> None:
        self.store = store
        self.codec = codec
        self.capacity = capacity
        self.generation: int | None = None
        self._cache: OrderedDict[bytes, V | None] = OrderedDict()
        #: Changed since the last checkpoint: key -> its partition.
        self._changed: dict[bytes, int] = {}
        #: Handed to a checkpoint not yet stored: reading RocksDB for these would go back
        #: in time, so they stay cached until :meth:`stored`.
        self._unstored: dict[bytes, int] = {}
        #: Reads answered from memory and from RocksDB since :meth:`take_read_counts`.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def read(self, partition: int, key: bytes) -> V | None:
        """The customer's current value: cached, else decoded from the partition's store.

        Raises what the codec raises on a record it cannot read (the caller dead-letters
        the message); nothing is cached then.
        """
        cache = self._cache
        if key in cache:
            cache.move_to_end(key)
            self.hits += 1
            return cache[key]
        self.misses += 1
        raw = self.store.read(partition, key)
        value = None if raw is None else self.codec.decode(raw)
        cache[key] = value
        return value

    def peek(self, key: bytes) -> tuple[bool, V | None]:
        """``(True, value)`` if ``key`` is cached, else ``(False, None)``.

        The cached value is what the agent decides on, maybe not stored yet; for readers
        outside the agent (the customer API), so the LRU order is left alone.
        """
        if key in self._cache:
            return True, self._cache[key]
        return False, None

    def put(self, partition: int, key: bytes, value: V) -> None:
        """The customer's new value: read back by later messages, stored at the checkpoint."""
        self._cache[key] = value
        self._cache.move_to_end(key)
        self._changed[key] = partition

    def take_read_counts(self) -> tuple[int, int]:
        """Reads from memory and from RocksDB since the last call, for the metrics."""
        counts, self.hits, self.misses = (self.hits, self.misses), 0, 0
        return counts

    def at(self, partition: int) -> PartitionView[V]:
        """A read-only view of one partition, the processor's state store."""
        return PartitionView(self, partition)

    def take_changes(self) -> dict[int, list[tuple[bytes, V]]]:
        """Each changed value once, by partition; the next checkpoint starts empty.

        Values, not bytes: the checkpoint encodes them in the background, which is safe
        because a value is never changed in place (the engine copies on write).
        """
        cache = self._cache
        changes: dict[int, list[tuple[bytes, V]]] = defaultdict(list)
        for key, partition in self._changed.items():
            value = cache[key]
            assert value is not None  # only put() marks a key changed
            changes[partition].append((key, value))
            self._unstored[key] = partition
        self._changed = {}
        return changes

    def stored(self, changes: Mapping[int, Sequence[tuple[bytes, object]]]) -> None:
        """The values are in RocksDB now: evict the least recently used beyond the bound."""
        for items in changes.values():
            for key, _ in items:
                self._unstored.pop(key, None)
        cache, pinned = self._cache, self._changed.keys() | self._unstored.keys()
        while len(cache) > self.capacity:
            oldest = next(iter(cache))
            if oldest in pinned:
                break  # recently changed: everything older was evicted already
            cache.popitem(last=False)

    def forget(self, generation: int | None) -> None:
        """Drop every cached value (nothing may be waiting to be stored): partitions moved."""
        if self._changed or self._unstored:
            raise RuntimeError("state layer asked to forget values not yet stored")
        self._cache.clear()
        self.generation = generation


class PartitionView(Generic[V]):
    """One partition of a :class:`TableState`, read by key: the processor's state store."""

    __slots__ = ("partition", "state")

    def __init__(self, state: TableState[V], partition: int) -> None:
        self.state = state
        self.partition = partition

    def get(self, key: bytes, default: V | None = None) -> V | None:
        value = self.state.read(self.partition, key)
        return default if value is None else value


#: An acknowledgement to come: resolves to the record's metadata (its ``offset``).
Ack = asyncio.Future[Any]
#: Sends one record: (topic, key, value, partition or None for the key's) -> its ack.
Send = Callable[[str, bytes, bytes, int | None], Awaitable[Ack]]


@dataclass
class _Open:
    """The checkpoint being filled: its batches' outputs are sent, their acks not awaited."""

    started: float
    deliveries: list[Ack] = field(default_factory=list)
    afters: list[Callable[[], None]] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    messages: int = 0

    def describe(self) -> str:
        first = self.batches[0] if self.batches else "nothing"
        more = f" and {len(self.batches) - 1} more batch(es)" if len(self.batches) > 1 else ""
        return first + more


class Checkpointer(Generic[V]):
    """Moves batches' outputs and state out in the guaranteed order, one checkpoint in flight.

    A checkpoint holds one batch, or every batch of ``interval_s`` seconds (up to
    ``max_messages`` messages): a customer changed by several of them is encoded and
    written once. Each batch's outputs leave when it is submitted (a contact never waits
    for the checkpoint); what waits is storing the state and letting the offsets go.
    """

    def __init__(
        self,
        state: TableState[V],
        store: PartitionStore,
        changelog_topic: str,
        send: Send,
        observe: Callable[[float], None] = lambda seconds: None,
        on_failure: Callable[[BaseException], None] = lambda exc: None,
        interval_s: float = 0.0,
        max_messages: int = 5000,
    ) -> None:
        self.state = state
        self.store = store
        self.changelog_topic = changelog_topic
        self.send = send
        #: Told each checkpoint's seconds from its first batch sent to stored.
        self.observe = observe
        #: Told at once when a checkpoint fails, even if no batch follows to raise it.
        self.on_failure = on_failure
        self.interval_s = interval_s
        self.max_messages = max_messages
        #: The checkpoint sent and waiting for its acknowledgements, if any.
        self.in_flight: asyncio.Future[None] | None = None
        self._open: _Open | None = None
        self._lock = asyncio.Lock()

    async def submit(
        self,
        outputs: Iterable[Output],
        what: str,
        after: Callable[[], None] = lambda: None,
        messages: int = 1,
    ) -> None:
        """Send a decided batch's outputs; close the checkpoint if it is due.

        ``after`` runs once the checkpoint holding this batch is stored — acknowledge the
        batch's input messages there. When this closes a checkpoint, it returns once the
        *previous* one is complete: at most one is in flight, and they complete in order.
        """
        async with self._lock:
            checkpoint = self._open or _Open(time.perf_counter())
            self._open = checkpoint
            send = self.send
            checkpoint.deliveries += [await send(o.topic, o.key, o.value, None) for o in outputs]
            checkpoint.afters.append(after)
            checkpoint.batches.append(what)
            checkpoint.messages += messages
            if (
                time.perf_counter() - checkpoint.started >= self.interval_s
                or checkpoint.messages >= self.max_messages
            ):
                await self._close()

    async def close_if_due(self) -> None:
        """Close an open checkpoint past its interval: traffic stopped before it filled."""
        async with self._lock:
            checkpoint = self._open
            if checkpoint is not None and time.perf_counter() - checkpoint.started >= (
                self.interval_s
            ):
                await self._close()

    async def flush(self) -> None:
        """Close the open checkpoint, if any, and wait until everything is stored."""
        async with self._lock:
            if self._open is not None:
                await self._close()
            await self.drain()

    async def _close(self) -> None:
        checkpoint, self._open = self._open, None
        assert checkpoint is not None
        changes = self.state.take_changes()
        await self.drain()
        self.in_flight = asyncio.ensure_future(self._complete(checkpoint, changes))
        self.in_flight.add_done_callback(self._watch)

    def _watch(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self.on_failure(done.exception())  # type: ignore[arg-type]

    async def drain(self) -> None:
        """Wait until the checkpoint in flight, if any, is complete; raise what it raised."""
        previous, self.in_flight = self.in_flight, None
        if previous is not None:
            await previous

    async def _complete(self, checkpoint: _Open, changes: dict[int, list[tuple[bytes, V]]]) -> None:
        """Encode and send the states, wait for every ack, store, let the offsets go.

        Runs beside the agent, which decides the next batches meanwhile. Every step is done
        in slices of at most ``SLICE_S``: encoding and sending (tens of microseconds a
        customer), storing (a write batch per partition) and the batches' ``after`` calls
        (metrics, timers and acknowledgements, ~15 µs an event). Unsliced, a checkpoint of a
        thousand customers held the event loop — and every contact waiting behind it — for
        15-65 ms at a time, twice a second at 2,000 events/s.
        """
        encode, send, topic = self.state.codec.encode, self.send, self.changelog_topic
        records: dict[int, list[tuple[bytes, bytes]]] = {}
        changelog: dict[int, list[Ack]] = {}
        slices = _Slices()
        for partition, items in changes.items():
            rows = records[partition] = []
            acks = changelog[partition] = []
            for key, value in items:
                raw = encode(value)
                rows.append((key, raw))
                acks.append(await send(topic, key, raw, partition))
                await slices.pause()
        written = [ack for acks in changelog.values() for ack in acks]
        await wait_for_acks([*checkpoint.deliveries, *written], checkpoint.describe())
        for partition, acks in changelog.items():
            offset = max(int(ack.result().offset) for ack in acks)  # aiokafka RecordMetadata
            self.store.write(partition, records[partition], offset)
            await slices.pause()
        self.state.stored(changes)
        self.observe(time.perf_counter() - checkpoint.started)
        for after in checkpoint.afters:  # in order: each acknowledges its batch's messages
            after()
            await slices.pause()


class _Slices:
    """Lets the event loop run other tasks once ``SLICE_S`` has passed since it last did."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = time.perf_counter() + SLICE_S

    async def pause(self) -> None:
        if time.perf_counter() >= self.until:
            await asyncio.sleep(0)
            self.until = time.perf_counter() + SLICE_S


async def wait_for_acks(deliveries: Sequence[Ack], what: str) -> None:
    """Wait once for the broker's acknowledgements, saying so if it takes unusually long."""
    if not deliveries:
        return
    pending = asyncio.ensure_future(asyncio.gather(*deliveries))
    waited = 0.0
    while True:
        done, _ = await asyncio.wait({pending}, timeout=SLOW_ACK_S)
        if done:
            pending.result()
            return
        waited += SLOW_ACK_S
        log.warning(
            "Still waiting after %.0fs for the broker to acknowledge %d record(s) of %s",
            waited,
            len(deliveries),
            what,
        )
