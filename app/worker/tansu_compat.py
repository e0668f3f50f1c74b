"""Every accommodation the embedded Tansu broker needs, in one place, off by default.

Apache Kafka needs none of these. They are switched on only when
``KAIROS_BROKER_FLAVOR=tansu`` (the demo and the integration tests), and
``tests/app/test_tansu_compat.py`` fails if an upgrade of faust-streaming or aiokafka
moves the code they patch. Each was measured (see ``shared/EMBEDDED-BROKER.md``):

1. Faust hard-codes ``fetch_max_wait_ms=1500`` and Tansu holds every fetch open that long
   even while data arrives, adding ~1.3 s per hop. We lower it to 100 ms by default
   (``KAIROS_TANSU_FETCH_MAX_WAIT_MS``): each hop then waits ~50 ms on average, 100 ms at
   worst; lower trades broker CPU (more fetches) for latency.
2. Tansu numbers the first group generation 0 and aiokafka only sends LeaveGroup when
   the generation is > 0, so a restarted worker waited for the dead member's session to
   expire. We send LeaveGroup for generation 0 too.
3. Tansu's ``ListOffsets(latest)`` under-reports the end offset (the newest batch's first
   offset + 1), which makes Faust stop changelog recovery early (restoring stale values) or
   crash with ``ConsistencyError``. The high-water mark in a Fetch response is right, so we
   correct Faust's recovery high-waters with one small fetch per partition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiokafka
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 100
_CORRECTION_FETCH_TIMEOUT_MS = 2000
_applied = False


def _patch_fetch_wait(fetch_max_wait_ms: int) -> None:
    original = AIOKafkaConsumerThread._create_worker_consumer

    def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


async def _leave_group_from_generation_zero(self: GroupCoordinator) -> None:
    """Aiokafka's ``_maybe_leave_group`` with ``generation >= 0`` instead of ``> 0``."""
    if self.generation >= 0 and self._group_instance_id is None:
        request = LeaveGroupRequest(self.group_id, self.member_id)
        try:
            await self._send_req(request)
        except KafkaError as err:
            log.error("LeaveGroup request failed: %s", err)
    self.reset_generation()


async def fetch_highwaters(bootstrap_servers: Any, reported: Mapping[TP, int]) -> dict[TP, int]:
    """True end offsets: fetch one record near each reported end and read the high-water."""
    corrected = dict(reported)
    wanted = {tp: offset for tp, offset in reported.items() if offset is not None and offset > 0}
    if not wanted:
        return corrected
    probe = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=64 * 1024,
    )
    await probe.start()
    try:
        partitions = {tp: TopicPartition(tp.topic, tp.partition) for tp in wanted}
        probe.assign(list(partitions.values()))
        for tp, offset in wanted.items():
            probe.seek(partitions[tp], offset - 1)
        pending = set(partitions.values())
        for _ in range(5):
            if not pending:
                break
            await probe.getmany(*pending, timeout_ms=_CORRECTION_FETCH_TIMEOUT_MS)
            pending = {p for p in pending if probe.highwater(p) is None}
        for tp, partition in partitions.items():
            true_end = probe.highwater(partition)
            if true_end is not None and true_end > corrected[tp]:
                log.info("Corrected end offset of %s from %s to %s", tp, corrected[tp], true_end)
                corrected[tp] = true_end
    finally:
        await probe.stop()
    return corrected


def _patch_highwaters() -> None:
    original = AIOKafkaConsumerThread._highwaters

    async def highwaters(self: AIOKafkaConsumerThread, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported
        servers = self._ensure_consumer()._client._bootstrap_servers
        return await fetch_highwaters(servers, reported)

    AIOKafkaConsumerThread._highwaters = highwaters  # type: ignore[method-assign]


def apply(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Install the accommodations once per process (idempotent)."""
    global _applied
    if _applied:
        return
    _patch_fetch_wait(fetch_max_wait_ms)
    GroupCoordinator._maybe_leave_group = _leave_group_from_generation_zero
    _patch_highwaters()
    _applied = True
