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
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import faust
from faust.types import StreamT

from agents import intake
from agents.checkpoint import (
    CUSTOMER_STATES,
    RAW_BYTES,
    Ack,
    Checkpointer,
    FaustTableStore,
    Send,
    StateCodec,
    TableState,
)
from agents.clock import Clock, utc_now
from agents.config import RuntimeConfig
from agents.health import AgentHealth, is_ready
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed, StateStore
from agents.timer_scheduler import TimerIndex, tick_message
from rules.ruleset import Ruleset
from schemas.actions import Channel
from schemas.codec import decode_state
from schemas.state import CustomerState
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

STATE_TABLE = "customer_state"

V = TypeVar("V")
#: How an agent decides one message on its table's state (``EventProcessor.process``...).
Decide = Callable[[InputMessage, StateStore[V]], Processed[V]]
RM_CAPACITY_TABLE = "rm_capacity"
#: The longest an agent decides before what it decided leaves: a batch that arrives after a
#: pause (hundreds of events, tens of milliseconds to decide) does not hold its first
#: contacts until its last is decided.
DECIDE_SLICE_S = 0.005


@dataclass
class Pipeline:
    """Handles on what :func:`install` created, for the web views and tests."""

    app: faust.App
    topics: TopicNames
    processor: EventProcessor
    state: Any  # faust Table of customer id bytes -> CustomerState JSON bytes
    metrics: Metrics
    health: AgentHealth
    #: A customer's latest state, for the customer API (see :func:`install`).
    customer_state: Callable[[bytes], CustomerState | None]


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

    def checkpointed(
        name: str, table: Any, codec: StateCodec[V], decide: Decide[V]
    ) -> Checkpointer[V]:
        """An agent deciding batches of its topics' messages on ``table``'s state layer."""
        stored = FaustTableStore(table)
        layer = TableState(stored, codec, config.state_cache_customers)
        checkpoints = Checkpointer(
            layer,
            stored,
            stored.changelog_topic,
            _sender(app),
            metrics.checkpoints.observe,
            _on_checkpoint_failure(app, health, name),
            config.checkpoint_interval_s,
        )

        async def agent(stream: StreamT[bytes]) -> None:
            async with _stop_the_worker_if_this_fails(app, health, name):
                await _declare(outputs.values())
                # A checkpoint still in flight when the worker stops is let go: its messages
                # were never acknowledged, so the next owner decides them again (same ids).
                async for events in intake.batches(
                    app, stream.channel, config.batch_max_messages, config.batch_window_s
                ):
                    if layer.generation != app.consumer_generation_id:
                        await checkpoints.flush()  # partitions moved: re-read what is stored
                        layer.forget(app.consumer_generation_id)
                    generation = app.consumer_generation_id
                    first, decided = 0, []
                    until = time.perf_counter() + DECIDE_SLICE_S
                    for index, event in enumerate(events, 1):
                        message = event.message
                        processed = decide(_as_input(message), layer.at(message.partition))
                        if processed.state is not None:
                            layer.put(message.partition, *processed.state)
                        decided.append(processed)
                        if index < len(events) and time.perf_counter() >= until:
                            # what is decided leaves now, not when the whole batch is
                            await submit(checkpoints, events[first:index], decided)
                            await asyncio.sleep(0)  # the producer sends it, the fetcher runs
                            first, decided = index, []
                            if not intake.still_current(app, generation):
                                break  # a rebalance began: the rest is fetched again
                            until = time.perf_counter() + DECIDE_SLICE_S
                    if decided:
                        await submit(checkpoints, events[first:], decided)
                    cached, read = layer.take_read_counts()
                    metrics.state_reads.labels(table.name, "cached").inc(cached)
                    metrics.state_reads.labels(table.name, "stored").inc(read)
                    metrics.state_cached.labels(table.name).set(len(layer))

        app.agent(channels[name], name=name, concurrency=1)(agent)
        return checkpoints

    async def submit(
        checkpoints: Checkpointer[Any], events: Sequence[Any], decided: list[Processed[Any]]
    ) -> None:
        """Send what ``events`` decided; acknowledge them once their checkpoint is stored."""
        await checkpoints.submit(
            (output for processed in decided for output in processed.outputs),
            _describe([e.message for e in events]),
            _after_stored(events, decided),
            len(events),
        )

    def _after_stored(events: Sequence[Any], decided: list[Processed[Any]]) -> Callable[[], None]:
        """What a batch does once stored: time its actions, index its timers, commit it."""

        def done() -> None:
            for processed in decided:
                processor.observe_latency(processed)
                if processed.timers is not None:
                    timers = processed.timers
                    timer_index.note(timers.customer_id, timers.next_due, timers.kinds)
            intake.release(app, events)

        return done

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
    channels = {
        "decide_and_contact": inputs,
        "reserve_rm_capacity": app.topic(topics.rm_requests, partitions=config.partitions, **raw),
    }
    customer_checkpoints = checkpointed(
        "decide_and_contact", state, CUSTOMER_STATES, processor.process
    )
    counter_checkpoints = checkpointed(
        "reserve_rm_capacity", rm_counters, RAW_BYTES, processor.process_rm_request
    )

    if config.checkpoint_interval_s > 0:

        async def close_due_checkpoints() -> None:
            """Store what the last batches left once traffic stops short of a full interval."""
            await customer_checkpoints.close_if_due()
            await counter_checkpoints.close_if_due()

        app.timer(config.checkpoint_interval_s, name="close_due_checkpoints")(close_due_checkpoints)

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

    def customer_state(key: bytes) -> CustomerState | None:
        """The state the agent decides on: cached (maybe not stored yet), else stored.

        The cache is trusted only for the generation it was filled in: after a rebalance
        and until the agent's next batch empties it, RocksDB (restored) is the truth.
        """
        layer = customer_checkpoints.state
        if layer.generation == app.consumer_generation_id:
            cached, value = layer.peek(key)
            if cached:
                return value
        raw = state.get(key)
        return decode_state(raw) if raw is not None else None

    return Pipeline(
        app=app,
        topics=topics,
        processor=processor,
        state=state,
        metrics=metrics,
        health=health,
        customer_state=customer_state,
    )
