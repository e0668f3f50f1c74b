"""Faust wiring: the input topics, the per-customer state table, and the deciding agent.

One agent consumes all four inputs. They are co-partitioned by ``customer_id`` with the
state table's changelog, so a customer's events, profile and state always meet on the
same worker. ``concurrency=1`` because with more, faust-streaming can commit an offset
past a message still in flight (faust-streaming #606).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import StreamT

from agents.checkpoint import (
    CUSTOMER_STATES,
    RAW_BYTES,
    Ack,
    Checkpointer,
    FaustTableStore,
    Send,
    TableState,
)
from agents.clock import Clock, utc_now
from agents.config import RuntimeConfig
from agents.health import AgentHealth, is_ready
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed
from agents.timer_scheduler import TimerIndex, tick_message
from rules.ruleset import Ruleset
from schemas.actions import Channel
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

STATE_TABLE = "customer_state"
RM_CAPACITY_TABLE = "rm_capacity"


@dataclass
class Pipeline:
    """Handles on what :func:`install` created, for the web views and tests."""

    app: faust.App
    topics: TopicNames
    processor: EventProcessor
    state: Any  # faust Table of customer id bytes -> CustomerState JSON bytes
    metrics: Metrics
    health: AgentHealth


def _as_input(message: Any) -> InputMessage:
    return InputMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=message.timestamp,
    )


@contextlib.asynccontextmanager
async def _stop_the_worker_if_this_fails(
    app: faust.App, health: AgentHealth, agent: str
) -> AsyncIterator[None]:
    """Crash-only: an agent that raised takes the whole worker down, with a non-zero exit.

    Faust would restart the agent's actor in place, but the messages of the batch it was
    deciding are neither re-delivered nor acknowledged: the restarted agent sits behind a
    commit that never moves while the worker still looks healthy. A new process instead
    resumes from the last committed offset, which the orchestrator (compose's restart
    policy, Kubernetes) starts at once. Poison input never gets here (the processor
    dead-letters it), so what does is a failure a restart can cure, such as the broker.
    """
    try:
        yield
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await _stop_the_worker(app, health, agent, exc)
        raise


async def _stop_the_worker(
    app: faust.App, health: AgentHealth, agent: str, exc: BaseException
) -> None:
    health.fail(agent)  # /healthz and /readyz say so from this moment
    log.critical(  # the type only: an exception's text can quote a key
        "Agent %s failed (%s): stopping the worker so that a restart resumes from the "
        "last committed offset",
        agent,
        type(exc).__name__,
    )
    await app.crash(exc)


def _on_checkpoint_failure(
    app: faust.App, health: AgentHealth, agent: str
) -> Callable[[BaseException], None]:
    """A checkpoint that failed while its agent waits for input stops the worker too."""
    stopping: set[asyncio.Future[None]] = set()

    def failed(exc: BaseException) -> None:
        if health.alive:
            stop = asyncio.ensure_future(_stop_the_worker(app, health, agent, exc))
            stopping.add(stop)
            stop.add_done_callback(stopping.discard)

    return failed


def _sender(app: faust.App) -> Send:
    """Records straight to Faust's producer: no channel, buffer or callback per record.

    Faust's ``Topic.send`` wraps each record in a future message with callbacks and sensor
    calls; the checkpoint only needs the broker's acknowledgement, and it waits for a whole
    batch's at once. Partitioning is the producer's (murmur2 of the key), as through Faust.
    """

    async def send(topic: str, key: bytes, value: bytes, partition: int | None) -> Ack:
        ack = await app.producer.send(topic, key, value, partition, None, None)
        return cast(Ack, ack)

    return send


async def _declare(topics: Iterable[Any]) -> None:
    """Create the output topics if they are missing, as Faust's first ``send`` would."""
    for topic in topics:
        await topic.maybe_declare()


def _hold_acks(events: Sequence[Any]) -> Sequence[Any]:
    """Keep Faust from committing ``events`` when it takes the next batch.

    Faust acknowledges a batch's messages as soon as the agent asks for the next one, and
    commits acknowledged offsets; the checkpoint may still be waiting for the broker then.
    One more reference per message defers Faust's final acknowledgement to
    :func:`_release_acks`, which the checkpoint calls once the batch is stored.
    """
    for event in events:
        event.message.incref()
    return events


def _release_acks(app: faust.App, events: Sequence[Any]) -> None:
    """Drop the reference :func:`_hold_acks` took: the offsets may now be committed."""
    on_message_out = app.sensors.on_message_out
    for event in events:
        if event.ack():  # the last reference: Faust's consumer may commit it
            message = event.message
            on_message_out(message.tp, message.offset, message)


def _describe(messages: list[Any]) -> str:
    first = messages[0]
    return f"{len(messages)} message(s) from {first.topic}[{first.partition}]@{first.offset}"


def install(
    app: faust.App,
    config: RuntimeConfig,
    ruleset: Ruleset,
    metrics: Metrics,
    clock: Clock = utc_now,
    health: AgentHealth | None = None,
) -> Pipeline:
    """Declare topics, the state table and the agent on ``app``."""
    health = health or AgentHealth()
    topics = config.topics
    options = config.engine
    processor = EventProcessor(
        topics, ruleset, metrics, clock, options, max_message_bytes=config.max_message_bytes
    )
    processor.swap_ruleset(ruleset)
    timer_index = TimerIndex(options.timer_grace)

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*topics.inputs, partitions=config.partitions, **raw)
    outputs = {
        name: app.topic(name, partitions=config.partitions, **raw)
        for name in (
            *(topics.actions(c) for c in Channel),
            topics.decisions,
            topics.conversions,
            topics.dead_letter,
            topics.timers,
            topics.rm_requests,
            topics.rm_replies,
        )
    }
    rocksdb = {"block_cache_size": config.rocksdb_block_cache_bytes}
    state = app.Table(
        STATE_TABLE,
        default=None,
        partitions=config.partitions,
        help="Per-customer state: profile, counters, recent event ids.",
        key_type=bytes,  # raw bytes: our codec, not faust's, owns the state encoding
        value_type=bytes,
        options=dict(rocksdb),  # Faust pops keys from it: one dict per table
    )

    customer_state = FaustTableStore(state)
    customers = TableState(customer_state, CUSTOMER_STATES, config.state_cache_customers)
    customer_checkpoints = Checkpointer(
        customers,
        customer_state,
        customer_state.changelog_topic,
        _sender(app),
        metrics.checkpoints.observe,
        _on_checkpoint_failure(app, health, "decide_and_contact"),
    )

    async def decide_and_contact(stream: StreamT[bytes]) -> None:
        async with _stop_the_worker_if_this_fails(app, health, "decide_and_contact"):
            await _declare(outputs.values())
            # A checkpoint still in flight when the worker stops is let go: its messages were
            # never acknowledged, so the next owner decides them again, with the same ids.
            await _decide_batches(stream)

    async def _decide_batches(stream: StreamT[bytes]) -> None:
        # StreamT does not declare take_events; Faust's Stream, which agents receive, does.
        batches = cast(Stream[bytes], stream).take_events(
            config.batch_max_messages, within=config.batch_window_s
        )
        async for events in batches:
            if customers.generation != app.consumer_generation_id:
                await customer_checkpoints.drain()  # partitions moved: re-read what is stored
                customers.forget(app.consumer_generation_id)
            decided = []
            for event in events:
                message = event.message
                processed = processor.process(_as_input(message), customers.at(message.partition))
                if processed.state is not None:
                    customers.put(message.partition, *processed.state)
                decided.append(processed)
            await customer_checkpoints.submit(
                (output for processed in decided for output in processed.outputs),
                _describe([e.message for e in events]),
                _after_stored(events, decided),
            )
            cached, stored = customers.take_read_counts()
            metrics.state_reads.labels("cached").inc(cached)
            metrics.state_reads.labels("stored").inc(stored)
            metrics.state_cached.set(len(customers))

    def _after_stored(events: Sequence[Any], decided: list[Processed[Any]]) -> Callable[[], None]:
        """What a batch does once stored: time its actions, index its timers, commit it."""
        held = _hold_acks(events)

        def done() -> None:
            for processed in decided:
                processor.observe_latency(processed)
                if processed.timers is not None:
                    timers = processed.timers
                    timer_index.note(timers.customer_id, timers.next_due, timers.kinds)
            _release_acks(app, held)

        return done

    app.agent(inputs, name="decide_and_contact", concurrency=1)(decide_and_contact)

    # RM capacity is shared by customers on every partition: requests are keyed by RM, so
    # one worker owns each RM's daily count (a second, small table).
    rm_counters = app.Table(
        RM_CAPACITY_TABLE,
        default=None,
        partitions=config.partitions,
        help="RM contacts granted per RM (or branch) and working day.",
        key_type=bytes,
        value_type=bytes,
        options=dict(rocksdb),
    )
    rm_requests = app.topic(topics.rm_requests, partitions=config.partitions, **raw)
    counter_store = FaustTableStore(rm_counters)
    counters = TableState(counter_store, RAW_BYTES, config.state_cache_customers)
    counter_checkpoints = Checkpointer(
        counters,
        counter_store,
        counter_store.changelog_topic,
        _sender(app),
        metrics.checkpoints.observe,
        _on_checkpoint_failure(app, health, "reserve_rm_capacity"),
    )

    async def reserve_rm_capacity(stream: StreamT[bytes]) -> None:
        async with _stop_the_worker_if_this_fails(app, health, "reserve_rm_capacity"):
            async for event in stream.events():
                if counters.generation != app.consumer_generation_id:
                    await counter_checkpoints.drain()
                    counters.forget(app.consumer_generation_id)
                message = event.message
                processed = processor.process_rm_request(
                    _as_input(message), counters.at(message.partition)
                )
                if processed.state is not None:
                    counters.put(message.partition, *processed.state)
                await counter_checkpoints.submit(
                    processed.outputs,
                    _describe([message]),
                    _after_stored([event], [processed]),
                )

    app.agent(rm_requests, name="reserve_rm_capacity", concurrency=1)(reserve_rm_capacity)

    async def wake_customers_with_due_timers() -> None:
        """Tick each customer whose absence timer is due; re-index after a rebalance."""
        if app.rebalancing or not is_ready(app, health):
            return
        generation = app.consumer_generation_id
        if timer_index.generation != generation:
            found = await timer_index.rebuild(
                generation,
                state.items(),
                still_current=lambda: (
                    app.consumer_generation_id == generation and not app.rebalancing
                ),
            )
            if found is None:
                log.info("Timer re-index abandoned: partitions moved during the scan")
                return
            log.info("Indexed %d customers with pending timers (generation %s)", found, generation)
        for tick in timer_index.pop_due(clock()):
            key, value = tick_message(tick)
            await outputs[topics.timers].send(key=key, value=value)
        metrics.set_timers_pending(timer_index.pending_by_kind())

    app.timer(config.timer_check_interval_s, name="wake_customers_with_due_timers")(
        wake_customers_with_due_timers
    )
    return Pipeline(
        app=app, topics=topics, processor=processor, state=state, metrics=metrics, health=health
    )
