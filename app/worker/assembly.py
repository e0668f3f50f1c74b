"""``kairos worker``: the production entry point, one Faust worker process."""

from __future__ import annotations

import logging
from datetime import timedelta

import faust
from faust.sensors.prometheus import PrometheusMonitor
from prometheus_client import disable_created_metrics

from agents.clock import Clock, utc_now, warped
from agents.config import RuntimeConfig
from agents.health import AgentHealth
from agents.metrics import Metrics
from app.garbage import freeze_startup_objects, tune_garbage_collector
from app.kafka import bootstrap_servers, startup_ruleset
from app.settings import Settings
from app.worker import web
from app.worker.faust_app import Worker, collect_old_garbage, create_app
from app.worker.faust_sensor import faust_monitor
from app.worker.gauges import WorkerGauges, rocksdb_sizes
from app.worker.lag import ConsumerLagProbe
from app.worker.logs import configure_logging, logging_config
from rules.engine import EngineOptions
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def build(settings: Settings) -> tuple[faust.App, Metrics]:
    """The app with its agents, rules watcher and web views; refuses a bad ruleset up front.

    The starting ruleset is the one deployed live on the rules topic, or the bootstrap rules
    at ``KAIROS_RULES_PATH`` when nothing was ever deployed; later deploys are swapped in by
    the rules watcher without a restart.
    """
    from agents import pipeline, rules_watcher  # wiring layer: imported here so app/ stands alone

    ruleset = startup_ruleset(settings)
    app = create_app(settings)
    metrics, app.monitor = worker_metrics()
    health = AgentHealth()
    config = runtime_config(settings)
    installed = pipeline.install(app, config, ruleset, metrics, clock_from(settings), health)
    rules_watcher.install(app, config, installed.processor, metrics)
    _install_worker_gauges(app, settings, metrics)
    collect_old_garbage(app, settings.gc_full_interval_s, metrics.gc_full.observe)
    web.install(
        app,
        metrics,
        ruleset=lambda: installed.processor.ruleset,
        customer_table=installed.state,
        customer_state=installed.customer_state,
        customer_api_token=settings.customer_api_token,
        health=health,
    )
    return app, metrics


def worker_metrics() -> tuple[Metrics, PrometheusMonitor]:
    """Our metrics and Faust's sensor on one registry, as ``/metrics`` serves them.

    Faust's sensor (rebalances, commit and send latency, ...) is exported in seconds under
    one fixed prefix (:mod:`app.worker.faust_sensor`), so dashboards do not depend on the
    app id. The ``_created`` series prometheus_client adds beside every counter and
    histogram are switched off: they were a fifth of every scrape, and Prometheus 2 stores
    them as ordinary gauges nobody queries (the counters' resets are detected without them).
    Done here in code rather than with ``PROMETHEUS_DISABLE_CREATED_SERIES``, which is read
    once when prometheus_client is imported: every way of starting a worker gets the same
    exposition without depending on its environment. The switch is process-wide, which is
    right for a worker process: this registry is all it exports.
    """
    # prometheus_client leaves this one function unannotated
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = Metrics()
    return metrics, faust_monitor(metrics.registry)


def runtime_config(settings: Settings) -> RuntimeConfig:
    """The part of the settings the Faust runtime needs: the one translation of it."""
    return RuntimeConfig(
        topics=TopicNames(settings.topic_prefix),
        partitions=settings.partitions,
        bootstrap=tuple(bootstrap_servers(settings.broker_url)),
        engine=EngineOptions(
            allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
            timer_grace=timedelta(seconds=settings.timer_grace_s),
            max_future_skew=timedelta(seconds=settings.max_future_skew_s),
        ),
        max_message_bytes=settings.max_message_bytes,
        rocksdb_block_cache_bytes=settings.rocksdb_block_cache_mb * 1024 * 1024,
        batch_max_messages=settings.batch_max_messages,
        batch_window_s=settings.batch_window_s,
        state_cache_customers=settings.state_cache_customers,
        checkpoint_interval_s=settings.checkpoint_interval_s,
        timer_check_interval_s=settings.timer_check_interval_s,
    )


def clock_from(settings: Settings) -> Clock:
    """Real time unless the settings ask for the demo's simulation clock."""
    if settings.clock_origin is None:
        return utc_now
    return warped(settings.clock_origin, settings.clock_wall_origin, settings.clock_speed)


def _install_worker_gauges(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Lag (read from the broker on a timer) and state sizes, published at scrape time."""
    inputs = set(TopicNames(settings.topic_prefix).inputs)

    def assigned_inputs() -> list[tuple[str, int]]:
        try:
            assignment = app.consumer.assignment()
        except Exception:  # not started or mid-rebalance: nothing to report
            return []
        return [(tp.topic, tp.partition) for tp in assignment if tp.topic in inputs]

    probe = ConsumerLagProbe(
        bootstrap_servers(settings.broker_url),
        settings.app_id,
        assigned_inputs,
        settings.lag_interval_s,
    )

    async def read_consumer_lag() -> None:
        await probe.run()

    app.task(read_consumer_lag)
    metrics.registry.register(
        WorkerGauges(lambda: probe.lag, lambda: rocksdb_sizes(app.tables.values()))
    )


def run(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM; Faust's Worker handles the signals."""
    # The same configuration now, so start-up (which ruleset the worker starts with) is
    # logged as everything after it, and again when Faust's Worker sets logging up (it
    # clears the root handlers first): one format, one redaction, from the first line.
    configure_logging(settings)
    tune_garbage_collector(settings.gc_threshold)
    app, _ = build(settings)
    freeze_startup_objects()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        logging_config=logging_config(settings),
    )
    worker.execute_from_commandline()
