"""Fixes for faust-streaming bugs that lose events (1, 2) or cost per record (3, 4).

Unlike :mod:`app.worker.tansu_compat` these are not accommodations of one broker: they are
applied to every worker. ``tests/app/test_faust_fixes.py`` fails when an upgrade of
faust-streaming changes the code they replace, so each is re-examined, not carried blindly.

1. **Events delivered during the post-recovery seek are dropped** (``Recovery.
   on_recovery_completed``). When recovery has changelog records to replay, Faust starts its
   Fetcher *during* recovery. Once it is done it resumes the stream partitions, then seeks
   them to the committed offsets, then calls ``flow_control.resume()`` — which clears every
   stream queue. With the Fetcher already running, messages fetched in between reach the
   agent's queue and are wiped before the agent sees them: never processed, never acked.
   Their aiokafka positions have moved past them, so nothing re-fetches them, and the
   group's committed offset cannot pass the gap: the worker says ready yet consumes nothing
   more until it is restarted. Measured here: after a SIGKILL, ~1 restart in 10 whose
   recovery replayed changelog records lost every re-delivered event (0 of ~280 processed).
   The fix keeps Faust's steps but orders them so nothing can be delivered before the queues
   are cleared and the seek is done: clear (resume flow control), seek while the stream
   partitions are still paused, then resume them.

2. **A fetch that outlives a pause drains every partition and drops the records**
   (``Consumer._wait_next_records``). Faust hands the consumer thread its *live* set of
   active partitions, which recovery keeps changing while the fetch waits. When recovery
   pauses the changelogs and has not yet resumed the inputs, the set is empty, aiokafka reads
   an empty filter as "all partitions" and drains every buffered record, and Faust then drops
   each one whose partition is not in the (still empty) set — after aiokafka has moved past
   them. Measured here: the restarted worker consumed 0 of ~280 waiting events. The fix
   hands each fetch a snapshot, so what is drained is exactly what is delivered.

3. **Four tasks per message** (``Consumer._drain_messages``). Faust delivers every fetched
   message — stream and changelog alike — with ``wait_first(callback(message),
   suspend_flow.wait())``: four new tasks (the callback, the suspend flag, the service's
   stopped and crashed flags), an ``asyncio.wait`` and three cancellations, so that a
   rebalance can interrupt a callback stuck on a full queue. Nearly every callback finishes
   without waiting. The fix runs it at once, as Python 3.12's eager tasks do, and only
   when it has to wait hands the started coroutine to the same ``wait_first``: the same
   race with a rebalance, without its cost when there is nothing to race.

4. **A task, a timer and two counters per changelog record** (``Recovery.
   _slurp_changelogs``). The restore loop takes each record with ``asyncio.wait_for(queue.
   get(), 5.0)`` (a task and a timer even when the queue is full), formats two debug
   f-strings, and after each record sums every partition's remaining offsets twice to see
   whether recovery is over. The fix takes queued records with ``get_nowait`` (the wait
   with its 5 s timeout stays for an empty queue), drops the per-record debug lines, and
   checks for the end when the queue is drained (and every few hundred records, when it
   also yields to the loop so the worker keeps answering) instead of after every record.

   Fixes 3 and 4 pay most together: with one alone the loop still goes round once per
   record for the other. Restoring a changelog into an empty worker (``bench/state_scale.py``,
   300,000 customers) read 7,568 records/s with Faust's methods, 11,451 with fix 3 alone,
   10,530 with fix 4 alone and 27,000-32,500 with both; a million customers were ready in
   36 s instead of 124 s.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Coroutine, Generator
from time import monotonic
from typing import Any, cast

from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING, Consumer, RecordMap
from faust.types import TP
from faust.utils.tracing import finish_span
from mode.services import ServiceTask

log = logging.getLogger(__name__)

#: Faust's own methods, kept for the guard test (and for anyone comparing).
ORIGINAL_ON_RECOVERY_COMPLETED = Recovery.on_recovery_completed
ORIGINAL_WAIT_NEXT_RECORDS = Consumer._wait_next_records
ORIGINAL_DRAIN_MESSAGES = Consumer._drain_messages
ORIGINAL_SLURP_CHANGELOGS = cast(ServiceTask, vars(Recovery)["_slurp_changelogs"]).fun
_applied = False


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    """Faust's ``Recovery.on_recovery_completed`` with the stream resumed last (see above)."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            f"Recovery rebalancing again app id {self.app.consumer_generation_id} "
            f"param {generation_id}"
        )
        return
    # Clear the stream queues now, while nothing new can be delivered into them...
    self.app.flow_control.resume()
    if assignment:
        # ... seek while the stream partitions are still paused, so the Fetcher (running
        # since recovery) cannot deliver pre-seek records ...
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    # ... and only then let the stream partitions flow.
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    consumer.resume_flow()
    await cast(Any, self.app)._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _wait_next_records(
    self: Consumer, timeout: float
) -> tuple[RecordMap | None, set[TP] | None]:
    """Faust's ``Consumer._wait_next_records`` with a snapshot of the active partitions."""
    if not self.flow_active:
        await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
    try:
        self.not_waiting_next_records.set()
        if self.app.client_only:
            active: set[TP] | None = None
        else:
            active = set(self._get_active_partitions())  # the fix: a copy, not the live set
        records: RecordMap = {}
        if active is None or active:
            records = await self._getmany(active_partitions=active, timeout=timeout)
        else:
            await self.sleep(1)
        return records, active
    finally:
        self.not_waiting_next_records.set()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Finish ``coro``, whose first step already ran and yielded ``yielded`` (PEP 380).

    What ``yield from`` does, for a coroutine started by hand: every value it yields goes
    up to the task driving us, every value or exception sent down goes into it.
    """
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation included: it goes down into the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _resume(coro, yielded)


async def _deliver(consumer: Consumer, delivery: Awaitable[Any]) -> None:
    """Run ``callback(message)`` at once; only if it has to wait, race it with a rebalance."""
    if not isinstance(delivery, Coroutine):  # not ours to step: Faust's way
        await consumer.wait_first(delivery, consumer.suspend_flow.wait())
        return
    try:
        yielded = delivery.send(None)
    except StopIteration:
        return
    await consumer.wait_first(_finish(delivery, yielded), consumer.suspend_flow.wait())


async def _drain_messages(self: Consumer, fetcher: Any) -> None:  # pragma: no cover
    """Faust's ``Consumer._drain_messages``, delivering each message without four tasks."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Any, self)._stopped.is_set
    fetcher_should_stop = cast(Any, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        # the fix: no tasks unless the callback has to wait
                        await _deliver(self, callback(message))
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


#: Records the recovery loop applies in a row before it lets other tasks run (the web
#: server's /readyz, the fetcher refilling the queue).
_RECOVERY_YIELD_EVERY = 256


async def _slurp_changelogs(self: Any) -> None:
    """Faust's ``Recovery._slurp_changelogs`` without a task and a timer per record."""
    changelog_queue = self.tables.changelog_queue
    tp_to_table = self.tp_to_table

    active_tps = self.active_tps
    standby_tps = self.standby_tps
    active_offsets = self.active_offsets
    standby_offsets = self.standby_offsets
    active_events_received_at = self._active_events_received_at
    standby_events_received_at = self._standby_events_received_at

    buffers = self.buffers
    buffer_sizes = self.buffer_sizes
    processing_times = self._processing_times

    async def _maybe_signal_recovery_end(timeout: bool = False, timeout_count: int = 0) -> None:
        # lets wait at least 2 consecutive cycles for the queue to be
        # empty to avoid race conditions between
        # the aiokafka consumer position and draining of the queue
        if timeout and self.app.in_transaction and timeout_count > 1:
            await detect_aborted_tx()
        if self.in_recovery and not self.need_recovery():
            # apply anything stuck in the buffers
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            log.debug("Setting recovery end")
            self.signal_recovery_end.set()

    async def detect_aborted_tx() -> None:
        highwaters = self.active_highwaters
        offsets = self.active_offsets
        for tp, highwater in highwaters.items():
            if (
                highwater is not None
                and offsets[tp] is not None
                and offsets[tp] < highwater
                and await self.app.consumer.position(tp) >= highwater
            ):
                log.info(f"Aborted tx until highwater for {tp}")
                offsets[tp] = highwater

    timeout_count = 0
    since_yield = 0
    while not self.should_stop:
        try:
            self.signal_recovery_end.clear()
            if not changelog_queue.empty():  # the fix: no task and no timer per record
                event = changelog_queue.get_nowait()
                since_yield += 1
                if since_yield >= _RECOVERY_YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
            else:
                since_yield = 0
                try:
                    event = await asyncio.wait_for(changelog_queue.get(), timeout=5.0)
                except TimeoutError:
                    timeout_count += 1
                    if self.should_stop:
                        return
                    await _maybe_signal_recovery_end(timeout=True, timeout_count=timeout_count)
                    continue
            now = monotonic()
            timeout_count = 0
            message = event.message
            tp = message.tp
            offset = message.offset
            bufsize = buffer_sizes.get(tp)
            is_active = False
            if tp in active_tps:
                is_active = True
                table = tp_to_table[tp]
                offsets = active_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.recovery_buffer_size
                active_events_received_at[tp] = now
            elif tp in standby_tps:
                table = tp_to_table[tp]
                offsets = standby_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.standby_buffer_size
                    standby_events_received_at[tp] = now
            else:
                log.warning(f"recovery unknown topic {tp} offset {offset}")

            seen_offset = offsets.get(tp, None)
            if seen_offset is None or offset > seen_offset:
                offsets[tp] = offset
                buf = buffers[table]
                buf.append(event)
                await table.on_changelog_event(event)
                if len(buf) >= bufsize:
                    table.apply_changelog_batch(buf)
                    buf.clear()
                    self._last_flush_at = now
                now_after = monotonic()

                if is_active:
                    last_processed_at = self._last_active_event_processed_at
                    if last_processed_at is not None:
                        processing_times.append(now_after - last_processed_at)
                        max_samples = self.num_samples_required_for_estimate
                        if len(processing_times) > max_samples:
                            processing_times.popleft()
                    self._last_active_event_processed_at = now_after

            if since_yield and not changelog_queue.empty():
                continue  # the fix: the end is checked once the queue is drained, or yielding
            await _maybe_signal_recovery_end()

            standby_ready = self._standbys_span is None and self.tables.standbys_ready
            if not standby_ready and not self.standby_remaining_total():
                log.debug("Completed standby partition fetch")
                if self._standbys_span:
                    finish_span(self._standbys_span)
                    self._standbys_span = None
                self.tables.on_standbys_ready()
        except Exception as ex:
            log.warning(f"Error in recovery {ex}")


def apply(speed: bool = True) -> None:
    """Install the fixes once per process (idempotent: the first call decides).

    ``speed=False`` installs the fixes of lost or stalled events (1, 2) only, leaving
    Faust's own per-message delivery and restore loop (3, 4): what ``bench/pipeline.py``
    measures as stock Faust's floor. Workers always run with every fix.
    """
    global _applied
    if _applied:
        return
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
    if speed:
        Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
        Recovery._slurp_changelogs = ServiceTask(_slurp_changelogs)  # type: ignore[method-assign]
    _applied = True
