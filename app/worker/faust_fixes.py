"""Fixes for faust-streaming bugs that lose or stall events on any broker.

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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, RecordMap
from faust.types import TP

log = logging.getLogger(__name__)

#: Faust's own methods, kept for the guard test (and for anyone comparing).
ORIGINAL_ON_RECOVERY_COMPLETED = Recovery.on_recovery_completed
ORIGINAL_WAIT_NEXT_RECORDS = Consumer._wait_next_records
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


def apply() -> None:
    """Install the fixes once per process (idempotent)."""
    global _applied
    if _applied:
        return
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
    _applied = True
