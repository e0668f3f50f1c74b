"""Batches of input events straight from the agent's channel, past Faust's per-event Stream.

Faust delivers each fetched message to the agent's channel queue (the conductor decodes it
into an event and puts it there); a ``Stream`` then hands the agent one event at a time,
through a passive drainer, processors, two sensor calls and a context variable per event,
and ``take_events`` buffers them back into a list. Measured on this machine, that per-event
path was a quarter of a busy worker's samples — more than deciding the event. Kairos decides
in batches anyway, so it reads the queue itself: everything waiting at once, then what
arrives within the batch window.

What the Stream did that matters is kept: the message is tracked as unacknowledged (and
counted by Faust's sensor) before it is decided, so Faust never commits past it; a message
fetched before a rebalance (another consumer generation, or flow control suspended) is not
decided — Faust seeks back to the committed offset, so it is fetched again. Acknowledging a
decided message is the checkpoint's job, once its outputs and state are safe
(:func:`release`).

What neither did is put the inputs of one customer in the order they happened: a profile
and an event travel on different topics, and Faust hands over a fetch partition by
partition. Live, they arrive seconds apart and the order is right by itself; replayed after
a crash, both wait in one backlog and the event could be decided before the profile it
followed — suppressed for lack of consent, its contact lost. So a batch is merged by record
timestamp, as Kafka Streams picks the next record of a task (:func:`in_time_order`).
"""

from __future__ import annotations

import asyncio
import heapq
import operator
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust


async def batches(
    app: faust.App, channel: Any, max_messages: int, window_s: float
) -> AsyncIterator[list[Any]]:
    """Lists of at most ``max_messages`` events of the current generation, as they arrive.

    ``channel`` is the agent's (``stream.channel``): iterating it subscribes its topics.
    A batch is what is queued when the agent wakes. Faust delivers a whole fetch before the
    agent runs (``app/worker/faust_fixes.py`` 3), so only an event that wakes it alone waits
    ``window_s`` for company — one timer per batch in light traffic. Waiting whenever the
    queue held less than a full batch added the window to every contact under load (intake
    p50 53-71 ms at 2,000 events/s with it, 25-47 ms without). An error thrown into the
    channel (Faust's way to stop an agent) is raised.
    """
    queue = channel.__aiter__().queue  # registers the topics with Faust's conductor
    consumer = app.consumer
    track = consumer.unacked.add
    acking_topics = app.topics.acking_topics
    on_message_in = app.sensors.on_message_in
    flow_control = app.flow_control
    while True:
        try:
            events = [await queue.get()]
            if window_s > 0 and queue.empty():
                await asyncio.sleep(window_s)  # once per batch: the fetcher fills it meanwhile
            while len(events) < max_messages and not queue.empty():
                events.append(queue.get_nowait())
        except StopAsyncIteration:
            # Faust ends a stopping agent's channel this way; raised inside an async
            # generator it would become a RuntimeError, and a clean stop a crash (exit 70).
            return
        current: list[Any] = []
        generation = app.consumer_generation_id
        active = flow_control.is_active()
        for event in events:
            message = event.message
            if not active or message.generation_id != generation:
                continue  # fetched before a rebalance: Faust fetches it again after its seek
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                track(message)
                on_message_in(message.tp, message.offset, message)
            current.append(event)
        if current:
            yield in_time_order(current)


def still_current(app: faust.App, generation: int) -> bool:
    """Whether a batch taken in ``generation`` may still be decided: no rebalance began since.

    An agent that lets the loop run in the middle of a batch asks this before it goes on.
    A rebalance suspends flow control first, then moves the generation; the rest of the
    batch is then left undecided and unacknowledged, as :func:`batches` leaves a message
    fetched before a rebalance: its partition's owner fetches it again from the committed
    offset (Faust does not wait for it: ``stream_wait_empty`` is off).
    """
    return app.flow_control.is_active() and app.consumer_generation_id == generation


def in_time_order(events: list[Any]) -> list[Any]:
    """``events`` merged by record timestamp, each partition's own order kept.

    A k-way merge of the partitions' runs, not a sort: records of one partition stay in
    offset order even where their timestamps go backwards (producers' clocks differ), and
    equal timestamps keep the fetch's order. A batch of one partition is returned as it is.
    """
    runs: dict[Any, list[Any]] = {}
    for event in events:
        runs.setdefault(event.message.tp, []).append(event)
    if len(runs) < 2:
        return events
    return list(heapq.merge(*runs.values(), key=_TIMESTAMP))


_TIMESTAMP = operator.attrgetter("message.timestamp")


def release(app: faust.App, events: Sequence[Any]) -> None:
    """Acknowledge decided ``events`` to Faust: their offsets may now be committed."""
    on_message_out = app.sensors.on_message_out
    for event in events:
        if event.ack():  # the last reference: Faust's consumer may commit it
            message = event.message
            on_message_out(message.tp, message.offset, message)
