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

import functools
import re
from typing import Any

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, Message, StreamT
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


class CachedLabelsMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor with each labelled series looked up once, not per message.

    Faust's sensor calls ``labels(...)`` for every message and stream event, and derives
    the stream's label with a regular expression each time: 5 % of a busy worker's samples.
    The series and values are Faust's own; only the look-ups are kept (bounded by topics,
    partitions and streams).
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._per_topic = functools.cache(metrics.messages_received_per_topics.labels)
        self._per_tp = functools.cache(metrics.messages_received_per_topics_partition.labels)
        self._end_offsets = functools.cache(metrics.topic_partition_end_offset.labels)
        self._per_stream: dict[int, Any] = {}

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """Faust's ``on_message_in``, its series looked up once."""
        Monitor.on_message_in(self, tp, offset, message)
        metrics = self._metrics
        metrics.messages_received.inc()
        metrics.active_messages.inc()
        self._per_topic(tp.topic).inc()
        self._per_tp(tp.topic, tp.partition).set(offset)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        """Faust's ``on_stream_event_in``, the stream's series looked up once."""
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        metrics = self._metrics
        metrics.total_events.inc()
        metrics.total_active_events.inc()
        series = self._per_stream.get(id(stream))
        if series is None:  # streams live as long as the worker: a few, kept
            label = f"stream.{self._stream_label(stream)}.events"
            series = self._per_stream[id(stream)] = metrics.total_events_per_stream.labels(
                stream=label
            )
        series.inc()
        return state

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """Faust's ``track_tp_end_offset``, its series looked up once."""
        Monitor.track_tp_end_offset(self, tp, offset)
        self._end_offsets(tp.topic, tp.partition).set(offset)


def faust_monitor(registry: CollectorRegistry) -> PrometheusMonitor:
    """The sensor to install as ``app.monitor``: Faust's metrics, in seconds, on ``registry``."""
    return CachedLabelsMonitor(metrics=faust_metrics(registry))
