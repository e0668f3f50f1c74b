"""Batches come straight from the channel: tracked before deciding, stale ones left alone."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agents import intake


class Channel:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.iterated = 0

    def __aiter__(self) -> Channel:
        self.iterated += 1
        return self


def _app(generation: int = 3, active: bool = True) -> Any:
    seen: list[tuple[Any, int]] = []
    return SimpleNamespace(
        consumer=SimpleNamespace(unacked=set()),
        topics=SimpleNamespace(acking_topics={"in"}),
        sensors=SimpleNamespace(
            on_message_in=lambda tp, offset, message: seen.append((tp, offset)),
            on_message_out=lambda tp, offset, message: seen.append((tp, -offset)),
        ),
        flow_control=SimpleNamespace(is_active=lambda: active),
        consumer_generation_id=generation,
        seen=seen,
    )


class Message(SimpleNamespace):
    __hash__ = object.__hash__  # Faust's consumer keeps unacknowledged messages in a set


def _event(offset: int, generation: int = 3, topic: str = "in", timestamp: float = 0.0) -> Any:
    message = Message(
        topic=topic,
        tp=(topic, 0),
        offset=offset,
        generation_id=generation,
        tracked=False,
        timestamp=timestamp,
    )
    acks: list[int] = []
    return SimpleNamespace(message=message, ack=lambda: acks.append(offset) or True, acks=acks)


def test_a_batch_is_what_is_queued_after_the_window_and_never_more_than_the_maximum() -> None:
    async def scenario() -> None:
        app, channel = _app(), Channel()
        for offset in range(5):
            channel.queue.put_nowait(_event(offset))
        got = intake.batches(app, channel, max_messages=3, window_s=0.0)
        first = await got.__anext__()
        second = await got.__anext__()
        assert [e.message.offset for e in first] == [0, 1, 2]
        assert [e.message.offset for e in second] == [3, 4]
        assert channel.iterated == 1, "the channel is subscribed once"
        assert len(app.consumer.unacked) == 5 and all(e.message.tracked for e in first)
        assert [offset for _, offset in app.seen] == [0, 1, 2, 3, 4], "Faust's sensor counts them"

        later = Channel()
        windowed = intake.batches(app, later, max_messages=3, window_s=0.05)
        waiting = asyncio.ensure_future(windowed.__anext__())
        later.queue.put_nowait(_event(5))
        await asyncio.sleep(0.01)
        later.queue.put_nowait(_event(6))  # arrives within the window: same batch
        assert [e.message.offset for e in await waiting] == [5, 6]

    asyncio.run(scenario())


def test_a_fetch_of_several_is_decided_at_once_without_waiting_for_the_window() -> None:
    async def scenario() -> list[Any]:
        app, channel = _app(), Channel()
        for offset in range(3):  # Faust queues a whole fetch before the agent runs
            channel.queue.put_nowait(_event(offset))
        batches = intake.batches(app, channel, max_messages=500, window_s=60.0)
        return await asyncio.wait_for(batches.__anext__(), timeout=5)

    assert [e.message.offset for e in asyncio.run(scenario())] == [0, 1, 2]


def test_messages_fetched_before_a_rebalance_are_not_decided_nor_acknowledged() -> None:
    async def scenario() -> None:
        app, channel = _app(generation=4), Channel()
        stale, current = _event(0, generation=3), _event(1, generation=4)
        channel.queue.put_nowait(stale)
        channel.queue.put_nowait(current)
        batch = await intake.batches(app, channel, 10, 0.0).__anext__()
        assert batch == [current]
        assert not stale.message.tracked and stale.acks == []
        intake.release(app, batch)
        assert current.acks == [1] and (("in", 0), -1) in app.seen

    asyncio.run(scenario())


def test_a_batch_half_decided_when_a_rebalance_begins_is_not_decided_further() -> None:
    """The agent asks between its slices: suspended flow or a new generation means stop."""
    assert intake.still_current(_app(generation=3), 3)
    assert not intake.still_current(_app(generation=3, active=False), 3), "rebalance began"
    assert not intake.still_current(_app(generation=4), 3), "partitions were reassigned"


def test_a_channel_ended_by_a_stopping_worker_ends_the_batches_cleanly() -> None:
    class Ending(Channel):
        def __init__(self) -> None:
            super().__init__()
            self.queue = Ended()

    class Ended(asyncio.Queue[Any]):
        async def get(self) -> Any:
            raise StopAsyncIteration  # what Faust throws into an agent's channel on stop

    async def scenario() -> list[Any]:
        return [batch async for batch in intake.batches(_app(), Ending(), 10, 0.0)]

    assert asyncio.run(scenario()) == [], "no RuntimeError: the agent stops, it does not crash"


def test_a_replayed_profile_is_decided_before_the_event_that_followed_it() -> None:
    """After a crash both wait in one backlog; Faust may hand over the event's topic first."""

    async def scenario() -> list[Any]:
        app, channel = _app(), Channel()
        app.topics.acking_topics = {"in", "profile"}
        channel.queue.put_nowait(_event(7, topic="in", timestamp=1_000.5))
        channel.queue.put_nowait(_event(3, topic="profile", timestamp=1_000.0))
        return await intake.batches(app, channel, 10, 0.0).__anext__()

    batch = asyncio.run(scenario())
    assert [(e.message.topic, e.message.offset) for e in batch] == [("profile", 3), ("in", 7)]


#: Partitions' runs as fetched: each a list of record timestamps, in offset order.
runs = st.lists(
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=8),
    min_size=1,
    max_size=4,
)


@given(runs)
def test_merging_by_time_keeps_every_event_and_each_partitions_order(
    timestamps: list[list[int]],
) -> None:
    fetched = [
        _event(offset, topic=f"t{i}", timestamp=ts)
        for i, run in enumerate(timestamps)
        for offset, ts in enumerate(run)
    ]
    merged = intake.in_time_order(list(fetched))
    assert sorted(map(id, merged)) == sorted(map(id, fetched)), "nothing lost, nothing twice"
    for i in range(len(timestamps)):
        offsets = [e.message.offset for e in merged if e.message.topic == f"t{i}"]
        assert offsets == sorted(offsets), "a partition's records stay in offset order"
    if all(run == sorted(run) for run in timestamps):
        stamps = [e.message.timestamp for e in merged]
        assert stamps == sorted(stamps), "in time order whenever each partition is"
