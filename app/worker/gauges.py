"""Gauges computed when Prometheus scrapes — consumer lag and state table sizes.

They describe the worker as a whole rather than events, so they are read at scrape time
(every few seconds) instead of being updated on the per-event path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.worker.lag import LagByPartition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSize:
    """RocksDB's own estimates for one table partition (exact counts would scan it)."""

    table: str
    partition: int
    keys: int
    bytes: int


class WorkerGauges(Collector):
    """``kairos_consumer_lag`` and ``kairos_state_table_{keys,bytes}``."""

    def __init__(
        self, lag: Callable[[], LagByPartition], sizes: Callable[[], Iterable[StoreSize]]
    ) -> None:
        self._lag = lag
        self._sizes = sizes

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "kairos_consumer_lag",
            "Input messages not yet committed by the group, per assigned partition "
            "(broker end offset minus committed offset).",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        keys = GaugeMetricFamily(
            "kairos_state_table_keys",
            "Estimated keys per state table partition on this worker (RocksDB estimate).",
            labels=["table", "partition"],
        )
        size = GaugeMetricFamily(
            "kairos_state_table_bytes",
            "Estimated bytes per state table partition on this worker: live data plus "
            "memtables (RocksDB estimate).",
            labels=["table", "partition"],
        )
        for store in self._sizes():
            keys.add_metric([store.table, str(store.partition)], store.keys)
            size.add_metric([store.table, str(store.partition)], store.bytes)
        yield keys
        yield size


def rocksdb_sizes(tables: Iterable[Any]) -> list[StoreSize]:
    """Sizes of the RocksDB partitions open on this worker, for Faust tables.

    Faust keeps one database per partition in its store's ``_dbs``; there is no public
    accessor, so a store without it (the in-memory store in unit tests) reports nothing.
    """
    sizes = []
    for table in tables:
        databases = getattr(table.data, "_dbs", {})
        for partition, db in sorted(databases.items()):
            try:
                keys = db.property_int_value("rocksdb.estimate-num-keys") or 0
                live = db.property_int_value("rocksdb.estimate-live-data-size") or 0
                memtables = db.property_int_value("rocksdb.size-all-mem-tables") or 0
            except Exception as exc:  # a closed partition must not fail a scrape
                log.debug("No size for %s[%s]: %s", table.name, partition, exc)
                continue
            sizes.append(StoreSize(table.name, partition, keys, live + memtables))
    return sizes
