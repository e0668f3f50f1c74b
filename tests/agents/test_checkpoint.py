"""The state layer: decoded state in memory, stored once per checkpoint, in Quix's order."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from agents.checkpoint import CUSTOMER_STATES, RAW_BYTES, Checkpointer, TableState
from agents.metrics import Metrics
from agents.outputs import Output
from agents.processor import EventProcessor, InputMessage
from schemas.codec import encode_state
from schemas.errors import StateCorruptError
from schemas.state import CustomerState
from schemas.topics import TopicNames
from testkit.factories import click, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from
from testkit.stores import MemoryStore

TOPICS = TopicNames("kairos")
CHANGELOG = "kairos-customer_state-changelog"


@dataclass
class Metadata:
    offset: int


class Broker:
    """Records what is sent, in order; acknowledges only when told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int | None]] = []
        self.pending: list[asyncio.Future[Any]] = []
        self.offsets: dict[tuple[str, int | None], int] = {}

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> Any:
        self.sent.append((topic, key, partition))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        offset = self.offsets.get((topic, partition), -1) + 1
        self.offsets[topic, partition] = offset
        ack.metadata = Metadata(offset)  # type: ignore[attr-defined]
        self.pending.append(ack)
        return ack

    def acknowledge(self, first: int | None = None) -> None:
        for ack in self.pending[:first]:
            if not ack.done():
                ack.set_result(ack.metadata)  # type: ignore[attr-defined]

    def refuse(self) -> None:
        for ack in self.pending:
            if not ack.done():
                ack.set_exception(RuntimeError("broker said no"))


def _customers(
    interval_s: float = 0.0,
) -> tuple[
    MemoryStore, Broker, TableState[CustomerState], Checkpointer[CustomerState], EventProcessor
]:
    """A customer-state layer and its checkpoints over an in-memory store and broker."""
    store, broker = MemoryStore(), Broker()
    state = TableState(store, CUSTOMER_STATES, capacity=100)
    checkpoints = Checkpointer(state, store, CHANGELOG, broker.send, interval_s=interval_s)
    return (
        store,
        broker,
        state,
        checkpoints,
        EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics()),
    )


def _message(topic: str, value: dict[str, object], offset: int, key: bytes = b"C1") -> InputMessage:
    raw = json.dumps(value).encode()
    return InputMessage(topic=topic, partition=0, offset=offset, key=key, value=raw)


def _decide(
    processor: EventProcessor, state: TableState[CustomerState], messages: list[InputMessage]
) -> list[Output]:
    outputs: list[Output] = []
    for message in messages:
        processed = processor.process(message, state.at(message.partition))
        if processed.state is not None:
            state.put(message.partition, *processed.state)
        outputs.extend(processed.outputs)
    return outputs


def test_a_checkpoint_stores_state_only_after_every_record_is_acknowledged() -> None:
    async def scenario() -> None:
        store, broker, state, checkpoints, processor = _customers()
        batch = [
            _message(TOPICS.profile, profile("C1"), 0),
            _message(TOPICS.drop_off, drop_off("C1", step=4), 1),
        ]
        outputs = _decide(processor, state, batch)
        committed: list[str] = []
        await checkpoints.submit(outputs, "batch 1", lambda: committed.append("batch 1"))
        await asyncio.sleep(0.01)  # the checkpoint encodes and sends its states beside the agent
        topics = [topic for topic, _, _ in broker.sent]
        assert topics[-1] == CHANGELOG and topics.count(CHANGELOG) == 1, (
            "the customer's state goes to the changelog once per checkpoint, after the outputs"
        )
        assert len(topics) == len(outputs) + 1
        await asyncio.sleep(0)
        assert store.partitions == {} and committed == [], "nothing stored before the acks"
        broker.acknowledge()
        await checkpoints.drain()
        stored = CUSTOMER_STATES.decode(store.partitions[0][b"C1"])
        assert stored == state.at(0).get(b"C1")
        assert stored is not None and stored.event_counts == {"drop_off": 1}
        assert store.offsets == {0: 0}, "the changelog offset is stored with the state"
        assert committed == ["batch 1"], "the batch's offsets are let go last"

    asyncio.run(scenario())


def test_the_next_batch_is_decided_while_the_previous_waits_and_they_complete_in_order() -> None:
    async def scenario() -> None:
        store, broker, state, checkpoints, processor = _customers()
        done: list[int] = []
        first = _decide(processor, state, [_message(TOPICS.profile, profile("C1"), 0)])
        await checkpoints.submit(first, "1", lambda: done.append(1))
        # decided on the first batch's state, which is not stored yet
        second = _decide(processor, state, [_message(TOPICS.drop_off, drop_off("C1"), 1)])
        assert second, "the drop-off read the profile the first batch left"
        submitted = asyncio.ensure_future(checkpoints.submit(second, "2", lambda: done.append(2)))
        await asyncio.sleep(0.01)
        assert not submitted.done(), "one checkpoint in flight at most"
        sent = [topic for topic, _, _ in broker.sent]
        assert sent.count(CHANGELOG) == 1 and sent[-1] != CHANGELOG, (
            "the second batch's contacts left at once; its state waits for the first checkpoint"
        )
        broker.acknowledge(first=1)  # the first batch: its one state record
        await submitted
        await asyncio.sleep(0.01)
        assert done == [1], "the second completes on its own acks, after the first"
        assert [topic for topic, _, _ in broker.sent].count(CHANGELOG) == 2
        broker.acknowledge()
        await checkpoints.drain()
        assert done == [1, 2] and store.offsets == {0: 1}

    asyncio.run(scenario())


def test_a_refused_record_stores_nothing_commits_nothing_and_is_reported() -> None:
    async def scenario() -> None:
        store, broker = MemoryStore(), Broker()
        state = TableState(store, RAW_BYTES, capacity=10)
        failures: list[BaseException] = []
        checkpoints = Checkpointer(state, store, CHANGELOG, broker.send, on_failure=failures.append)
        state.put(0, b"rm:1", b"1")
        committed: list[str] = []
        await checkpoints.submit([Output("out", b"k", b"v")], "one", lambda: committed.append("x"))
        broker.refuse()
        with pytest.raises(RuntimeError, match="broker said no"):
            await checkpoints.drain()
        assert store.partitions == {} and committed == []
        assert [type(f) for f in failures] == [RuntimeError], "told even with no next batch"

    asyncio.run(scenario())


def test_the_cache_is_bounded_yet_never_drops_a_value_not_yet_stored() -> None:
    async def scenario() -> None:
        store, broker = MemoryStore(), Broker()
        state = TableState(store, RAW_BYTES, capacity=2)
        checkpoints = Checkpointer(state, store, CHANGELOG, broker.send)
        for n in range(5):
            state.put(0, f"k{n}".encode(), str(n).encode())
        await checkpoints.submit([], "five")
        assert len(state) == 5, "sent, not stored: all kept"
        for n in range(5, 8):  # the next batch changes more while the first is in flight
            state.put(0, f"k{n}".encode(), str(n).encode())
        await asyncio.sleep(0.01)  # the checkpoint sends its states
        broker.acknowledge()
        await checkpoints.drain()
        assert len(state) == 3, "stored ones evicted; the next batch's changes are pinned"
        reads = store.reads
        assert state.at(0).get(b"k0") == b"0", "an evicted value is read back from the store"
        assert store.reads == reads + 1
        assert state.at(0).get(b"k7") == b"7" and store.reads == reads + 1
        assert state.take_read_counts() == (1, 1)

    asyncio.run(scenario())


def test_a_rebalance_forgets_the_cache_but_only_once_everything_is_stored() -> None:
    store = MemoryStore()
    state = TableState(store, RAW_BYTES, capacity=10)
    state.put(0, b"k", b"v")
    with pytest.raises(RuntimeError, match="not yet stored"):
        state.forget(7)
    changes = state.take_changes()
    store.write(0, changes[0], 0)
    state.stored(changes)
    store.partitions[0][b"k"] = b"written by the partition's next owner"
    state.forget(7)
    assert state.generation == 7 and len(state) == 0
    assert state.at(0).get(b"k") == b"written by the partition's next owner"


def test_an_unreadable_stored_state_is_dead_lettered_and_not_cached() -> None:
    store = MemoryStore()
    store.partitions[0] = {b"C1": b"\x02not zstd"}
    state = TableState(store, CUSTOMER_STATES, capacity=10)
    with pytest.raises(StateCorruptError):
        state.at(0).get(b"C1")
    processor = EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics())
    processed = processor.process(_message(TOPICS.app_click, click("C1"), 3), state.at(0))
    (letter,) = processed.outputs
    assert letter.topic == TOPICS.dead_letter and b"state_unreadable" in letter.value
    assert processed.state is None and len(state) == 0


def test_a_redelivery_inside_one_batch_is_still_recognised() -> None:
    state = TableState(MemoryStore(), CUSTOMER_STATES, capacity=10)
    processor = EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics())
    event = drop_off("C1", step=4)
    outputs = []
    for offset, (topic, value) in enumerate(
        [(TOPICS.profile, profile("C1")), (TOPICS.drop_off, event), (TOPICS.drop_off, event)]
    ):
        processed = processor.process(_message(topic, value, offset), state.at(0))
        if processed.state is not None:
            state.put(0, *processed.state)
        outputs.append(len(processed.outputs))
    assert outputs == [0, 2, 0], "decision + action once; the duplicate produces nothing"


def test_deciding_never_changes_the_cached_state_it_read() -> None:
    """The cache hands the engine the very object it keeps: the engine must copy, not mutate.

    Were a message dead-lettered half-way through an in-place change, the cache would hold
    a state no stored record has; this pins the engine's copy-on-write contract.
    """
    state = TableState(MemoryStore(), CUSTOMER_STATES, capacity=10)
    processor = EventProcessor(TOPICS, ruleset_from(IMMEDIATE_RULES), Metrics())
    inputs = [
        (TOPICS.profile, profile("C1")),
        (TOPICS.app_click, click("C1", screen="mortgage_calculator")),
        (TOPICS.drop_off, drop_off("C1", step=4)),
        (TOPICS.app_click, click("C1", screen="offer")),
        (TOPICS.drop_off, drop_off("C1", step=2)),
    ]
    for offset, (topic, value) in enumerate(inputs):
        before = state.at(0).get(b"C1")
        snapshot = encode_state(before) if before is not None else None
        processed = processor.process(_message(topic, value, offset), state.at(0))
        if before is not None:
            assert encode_state(before) == snapshot, f"message {offset} changed the state in place"
        if processed.state is not None:
            state.put(0, *processed.state)


def test_a_checkpoint_over_an_interval_writes_a_customer_changed_twice_once() -> None:
    async def scenario() -> None:
        store, broker, state, checkpoints, processor = _customers(interval_s=3600)
        done: list[int] = []
        for n, message in enumerate(
            [
                _message(TOPICS.profile, profile("C1"), 0),
                _message(TOPICS.drop_off, drop_off("C1", step=4), 1),
            ]
        ):
            outputs = _decide(processor, state, [message])
            await checkpoints.submit(outputs, str(n), lambda n=n: done.append(n))  # type: ignore[misc]
        sent = [topic for topic, _, _ in broker.sent]
        assert CHANGELOG not in sent and len(sent) == 2, "the contact left; the state waits"
        await checkpoints.close_if_due()
        assert CHANGELOG not in [topic for topic, _, _ in broker.sent], "not due for an hour"
        flushing = asyncio.ensure_future(checkpoints.flush())
        await asyncio.sleep(0.01)
        assert [topic for topic, _, _ in broker.sent].count(CHANGELOG) == 1, "written once"
        broker.acknowledge()
        await flushing
        assert done == [0, 1] and store.offsets == {0: 0}
        stored = CUSTOMER_STATES.decode(store.partitions[0][b"C1"])
        assert stored.event_counts == {"drop_off": 1}

    asyncio.run(scenario())


def test_a_checkpoint_lets_the_agent_run_between_its_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Encoding, sending and the batches' ``after`` calls never hold the loop all at once."""
    monkeypatch.setattr("agents.checkpoint.SLICE_S", 0.0)  # every step is a slice of its own

    async def scenario() -> None:
        _, broker, state, checkpoints, processor = _customers(interval_s=60)
        seen: list[str] = []
        for batch, customer in enumerate((b"C1", b"C2", b"C3")):
            message = _message(TOPICS.profile, profile(customer.decode()), batch, key=customer)
            outputs = _decide(processor, state, [message])
            after = functools.partial(seen.append, f"after {batch}")
            await checkpoints.submit(outputs, str(batch), after)
        changelog_sends: list[int] = []

        async def agent() -> None:  # what else wants the loop: the agent, the fetcher
            while True:
                changelog_sends.append([t for t, _, _ in broker.sent].count(CHANGELOG))
                seen.append("agent")
                await asyncio.sleep(0)

        running = asyncio.ensure_future(agent())
        flushed = asyncio.ensure_future(checkpoints.flush())
        while not broker.pending or len([t for t, _, _ in broker.sent if t == CHANGELOG]) < 3:
            await asyncio.sleep(0)
        broker.acknowledge()
        await flushed
        running.cancel()
        assert {1, 2} <= set(changelog_sends), "the agent ran between the states' encodes"
        afters = [i for i, what in enumerate(seen) if what.startswith("after")]
        assert [seen[i] for i in afters] == ["after 0", "after 1", "after 2"], "in order"
        assert all("agent" in seen[a:b] for a, b in itertools.pairwise(afters)), (
            "the agent ran between one batch's acknowledgements and the next's"
        )

    asyncio.run(scenario())
