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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import StreamT

from agents.checkpoint import Checkpoint, bind_current_event
from agents.clock import Clock, utc_now
from agents.config import RuntimeConfig
from agents.health import AgentHealth, is_ready
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage
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
        health.fail(agent)  # /healthz and /readyz say so from this moment
        log.critical(  # the type only: an exception's text can quote a key
            "Agent %s failed (%s): stopping the worker so that a restart resumes from the "
            "last committed offset",
            agent,
            type(exc).__name__,
        )
        await app.crash(exc)
        raise


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

    async def decide_and_contact(stream: StreamT[bytes]) -> None:
        async with _stop_the_worker_if_this_fails(app, health, "decide_and_contact"):
            await _decide_batches(stream)

    async def _decide_batches(stream: StreamT[bytes]) -> None:
        # StreamT does not declare take_events; Faust's Stream, which agents receive, does.
        batches = cast(Stream[bytes], stream).take_events(
            config.batch_max_messages, within=config.batch_window_s
        )
        async for events in batches:
            checkpoint = Checkpoint(state, outputs, _describe([e.message for e in events]))
            for event in events:
                # Faust's RocksDB store reads (and writes) the partition of the current event:
                # in a batch that must be each message's own, not the batch's last.
                bind_current_event(event)
                checkpoint.stage(
                    processor.process(_as_input(event.message), checkpoint.view), event
                )
            await checkpoint.complete()
            for processed in checkpoint.processed:
                processor.observe_latency(processed)
                if processed.timers is not None:
                    timers = processed.timers
                    timer_index.note(timers.customer_id, timers.next_due, timers.kinds)

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

    async def reserve_rm_capacity(stream: StreamT[bytes]) -> None:
        async with _stop_the_worker_if_this_fails(app, health, "reserve_rm_capacity"):
            async for event in stream.events():
                checkpoint = Checkpoint(rm_counters, outputs, _describe([event.message]))
                checkpoint.stage(
                    processor.process_rm_request(_as_input(event.message), checkpoint.view), event
                )
                await checkpoint.complete()
                for processed in checkpoint.processed:  # granted RM contacts leave from here
                    processor.observe_latency(processed)

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
