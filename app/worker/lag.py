"""Consumer lag as the broker sees it: end offsets minus the group's committed offsets.

Lag is read from the broker on a timer, not from what the worker has fetched: a worker
whose fetching stopped still sees old high-water marks and would report no lag at all,
which is exactly when an SRE needs to see it grow. One small client per worker asks
``ListOffsets`` and ``OffsetFetch`` for the input partitions assigned to it — the same two
requests ``kafka-consumer-groups.sh --describe`` makes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

#: (topic, partition) -> messages not yet committed by the group.
LagByPartition = dict[tuple[str, int], int]


class ConsumerLagProbe:
    """Refreshes the lag of the partitions ``assigned()`` returns, every ``interval_s``."""

    def __init__(
        self,
        bootstrap: list[str],
        group_id: str,
        assigned: Callable[[], Iterable[tuple[str, int]]],
        interval_s: float,
    ) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.assigned = assigned
        self.interval_s = interval_s
        self.lag: LagByPartition = {}

    async def run(self) -> None:
        """Refresh until cancelled; a broker error costs one reading, never the task."""
        # No group id on the consumer: a member of the worker's own group would rebalance it.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id="kairos-lag-probe", group_id=None
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="kairos-lag")
        await consumer.start()
        await admin.start()
        try:
            while True:
                try:
                    self.lag = await self._read(consumer, admin)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a metric must not kill the worker
                    log.warning("Could not read consumer lag from the broker: %s", exc)
                await asyncio.sleep(self.interval_s)
        finally:
            await admin.close()
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> LagByPartition:
        partitions = [TopicPartition(topic, p) for topic, p in sorted(set(self.assigned()))]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group_id, partitions=partitions)
        lag: LagByPartition = {}
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[(tp.topic, tp.partition)] = max(ends[tp] - done, 0)
        return lag
