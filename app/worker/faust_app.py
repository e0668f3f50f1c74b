"""The Faust application factory: the single translation of :class:`Settings` to Faust."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from app.settings import Settings
from app.worker import faust_fixes, tansu_compat

log = logging.getLogger(__name__)

#: Bytes a producer batch per partition may hold: a checkpoint's state records and outputs
#: go out in a few requests instead of hundreds.
PRODUCER_BATCH_BYTES = 512 * 1024


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Faust configuration derived from our settings, with the reason for each choice."""
    return {
        "broker": settings.broker_url,
        "store": "rocksdb://",  # rocksdict-backed RocksDB, changelog for recovery
        "datadir": str(settings.state_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "key_serializer": "raw",  # pydantic owns the bytes: parse once, in schemas.codec
        "value_serializer": "raw",
        "web_enabled": True,
        # Only our own pages (app/worker/web.py). Faust's would serve table rows (/table: a
        # customer's whole state, without a token), key locations (/router), the topology
        # (/graph) and sensor dumps (/stats, /performance) to anyone who can connect.
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        # Where peers route /customers/{id} requests for partitions this worker owns.
        "canonical_url": f"http://{settings.web_advertised_host or settings.web_host}"
        f":{settings.web_port}",
        # A short session makes the first group join (session/2) and failover fast.
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_request_timeout": max(30.0, settings.session_timeout_s * 2),
        # Frequent commits bound what a crashed worker re-processes (duplicates absorbed by ids).
        "broker_commit_interval": settings.commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": settings.processing_guarantee,
        "table_standby_replicas": 1,
        "stream_wait_empty": False,
        "producer_linger": 0.005,
        # Faust's default batch is aiokafka's 16 KB: ten 1.5 KB state records, so a busy
        # worker made a produce request — a loopback socket write with the kernel's share —
        # for every few records (14 % of a worker's samples went to the socket write).
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
    }


def create_app(settings: Settings) -> faust.App:
    """A configured, not yet started, Faust app (agents are installed by ``agents``)."""
    faust_fixes.apply()
    if settings.broker_flavor == "tansu":
        tansu_compat.apply(settings.tansu_fetch_max_wait_ms)
    return faust.App(settings.app_id, **faust_settings(settings))


def collect_old_garbage(
    app: faust.App, interval_s: float, observe: Callable[[float], None] = lambda seconds: None
) -> Callable[[], Awaitable[None]]:
    """Every ``interval_s``, one full collection: frees reference cycles among old objects.

    One pause that walks every live object, about a microsecond each (0.1-0.2 s with 2,000
    busy customers' contact histories; longer for a larger state cache), minutes apart
    instead of a walk of the live set every few seconds. ``observe`` is told its seconds
    (``kairos_gc_full_seconds``).
    """

    async def collect_every_generation() -> None:
        started = time.perf_counter()
        freed = gc.collect()
        seconds = time.perf_counter() - started
        observe(seconds)
        log.debug("Full garbage collection: %d unreachable in %.1f ms", freed, seconds * 1e3)

    app.timer(interval_s, name="collect_old_garbage")(collect_every_generation)
    return collect_every_generation


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    With a log level of WARNING or above, Faust's Worker adds a spinner handler and sets
    the *root* logger to DEBUG, so every ``log.debug`` in aiokafka and Faust builds a log
    record that the handlers then drop: 4 % of a busy worker's samples. A service has no
    terminal to spin on; the root logger keeps the level the settings give it.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
