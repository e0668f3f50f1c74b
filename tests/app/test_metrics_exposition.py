"""What ``/metrics`` serves passes ``promtool check metrics``, without starting a worker.

The registry is built as the worker builds it (:func:`app.worker.assembly.worker_metrics`),
with the scrape-time gauges and a sample in every kind of metric, so a name that breaks
Prometheus's conventions fails here in a second; the integration test
``tests/integration/test_metrics_lint.py`` checks a real worker's scrape the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, enable_created_metrics, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.worker.assembly import worker_metrics
from app.worker.faust_sensor import faust_metrics, seconds_name
from app.worker.gauges import StoreSize, WorkerGauges
from tests.ops import tools

#: Units Prometheus's conventions allow in a histogram's name (ours are all durations).
BASE_UNITS = ("_seconds", "_bytes")


@pytest.fixture
def scrape() -> Iterator[str]:
    """One scrape of a worker-shaped registry with a sample in each kind of metric."""
    metrics, _ = worker_metrics()
    metrics.registry.register(
        WorkerGauges(
            lambda: {("kairos.events.app_click", 0): 3},
            lambda: [StoreSize("customer_state", 0, keys=12, bytes=4096)],
        )
    )
    metrics.declare_rule("loan-dropoff-digital-nudge", ["push", "sms"], holdout=True, goal=True)
    metrics.actions.labels("push", "loan-dropoff-digital-nudge").inc()
    metrics.decision_latency.observe(("ingested",), 0.05)
    metrics.ruleset.info({"version": "rs-1"})
    yield generate_latest(metrics.registry).decode()
    enable_created_metrics()  # the switch is process-wide: leave other tests the default


def test_the_scrape_passes_promtool(scrape: str) -> None:
    promtool = tools.promtool()
    result = tools.run([promtool, "check", "metrics"], stdin=scrape)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_no_created_series(scrape: str) -> None:
    names = {
        sample.name
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    assert names, "the scrape is empty"
    assert not [name for name in names if name.endswith("_created")]


def test_every_histogram_is_named_in_a_base_unit(scrape: str) -> None:
    """What promtool checks of names, without promtool: a ``_ms`` never comes back."""
    histograms = [
        family.name
        for family in text_string_to_metric_families(scrape)
        if family.type == "histogram"
    ]
    assert "kairos_faust_events_runtime_seconds" in histograms
    assert "kairos_faust_consumer_commit_latency_seconds" in histograms
    assert not [name for name in histograms if not name.endswith(BASE_UNITS)]


def test_faust_reports_milliseconds_and_the_scrape_says_seconds() -> None:
    registry = CollectorRegistry()
    faust = faust_metrics(registry)
    faust.consumer_commit_latency.observe(250.0)  # what Faust's sensor passes: ms
    assert registry.get_sample_value("kairos_faust_consumer_commit_latency_seconds_sum") == 0.25
    assert (
        registry.get_sample_value(
            "kairos_faust_consumer_commit_latency_seconds_bucket", {"le": "0.25"}
        )
        == 1.0
    )
    assert registry.get_sample_value("kairos_faust_consumer_commit_latency_sum") is None


@pytest.mark.parametrize(
    ("faust_name", "ours"),
    [
        ("kairos_faust_events_runtime_ms", "kairos_faust_events_runtime_seconds"),
        ("kairos_faust_assign_latency", "kairos_faust_assign_latency_seconds"),
    ],
)
def test_seconds_name(faust_name: str, ours: str) -> None:
    assert seconds_name(faust_name) == ours


def test_the_cached_monitor_exports_what_fausts_own_sensor_exports() -> None:
    """Looking each series up once must not change a single exported sample."""
    from unittest import mock

    from faust.sensors.prometheus import PrometheusMonitor
    from faust.types import TP

    from app.worker.faust_sensor import CachedLabelsMonitor

    def feed(monitor: PrometheusMonitor) -> None:
        stream = mock.Mock(shortlabel="Stream: Topic: kairos.events.app_click")
        for offset in range(3):
            for partition in (0, 1):
                tp = TP("kairos.events.app_click", partition)
                message = mock.Mock(time_in=None)
                monitor.on_message_in(tp, offset, message)
                monitor.on_stream_event_in(tp, offset, stream, mock.Mock())
                monitor.track_tp_end_offset(tp, offset + 10)

    scrapes = []
    for kind in (PrometheusMonitor, CachedLabelsMonitor):
        registry = CollectorRegistry(auto_describe=True)
        feed(kind(metrics=faust_metrics(registry)))
        lines = generate_latest(registry).decode().splitlines()
        scrapes.append("\n".join(line for line in lines if "e+09" not in line))  # clock times
    assert scrapes[0] == scrapes[1]
    assert 'partition="1",topic="kairos.events.app_click"} 12.0' in scrapes[1]
