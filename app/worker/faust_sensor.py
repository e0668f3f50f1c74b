"""Faust's own Prometheus sensor, exported in base units under ``kairos_faust_``.

faust-streaming's ``FaustMetrics`` observes every latency in milliseconds, into histograms
named ``..._latency`` or ``..._events_runtime_ms``. Prometheus wants base units in the name
(``promtool check metrics`` rejects ``_ms``), and a histogram in ms beside ours in seconds
invites dashboards that are off by a factor of 1000. So each of Faust's histograms is
replaced, before the sensor ever observes, by one named ``..._seconds`` with buckets in
seconds, which converts what Faust hands it. The replacement is derived from what
``FaustMetrics.create`` registers rather than from a list, so a histogram a Faust upgrade
adds is converted too; ``tests/app/test_metrics_exposition.py`` fails if one slips through.
"""

from __future__ import annotations

import re
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, Histogram

#: The prefix of every Faust metric, fixed so dashboards do not depend on the app id.
FAUST_PREFIX = "kairos_faust"

#: Faust's millisecond buckets (5 ms to 10 s) in seconds, plus the long tail of a
#: rebalance that waits for a table to recover (30 s to 5 min): beyond 10 s Faust's own
#: buckets only say "+Inf".
SECONDS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
    300.0,
)

_MS_SUFFIX = re.compile(r"_ms$")
_IN_MS = re.compile(r"\bin ms\b")


class MillisecondsInSeconds(Histogram):
    """A histogram in seconds that Faust feeds in milliseconds.

    Only ``observe`` converts: Faust calls nothing else on its histograms. ``time()``
    would observe seconds and must not be used on it.
    """

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """Record ``amount`` milliseconds as seconds."""
        super().observe(amount / 1000.0, exemplar)


def seconds_name(name: str) -> str:
    """``kairos_faust_events_runtime_ms`` -> ``kairos_faust_events_runtime_seconds``."""
    return f"{_MS_SUFFIX.sub('', name)}_seconds"


def faust_metrics(registry: CollectorRegistry, prefix: str = FAUST_PREFIX) -> FaustMetrics:
    """Faust's metrics on ``registry``, every histogram renamed and converted to seconds."""
    metrics = FaustMetrics.create(registry, prefix)
    # Any: ``_replace`` is typed per field, and these fields are only known at run time.
    converted: dict[str, Any] = {}
    for field, metric in metrics._asdict().items():
        if not isinstance(metric, Histogram):
            continue
        (family,) = metric.collect()
        registry.unregister(metric)
        converted[field] = MillisecondsInSeconds(
            seconds_name(family.name),
            _IN_MS.sub("in seconds", family.documentation),
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
    return metrics._replace(**converted)


def faust_monitor(registry: CollectorRegistry) -> PrometheusMonitor:
    """The sensor to install as ``app.monitor``: Faust's metrics, in seconds, on ``registry``."""
    return PrometheusMonitor(metrics=faust_metrics(registry))
