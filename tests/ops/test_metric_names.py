"""Every metric the alerts and the dashboard use is one the worker exports.

The exported names come from the code, never from a list kept in this test: a metric
renamed in ``agents/metrics.py`` makes this fail until ``ops/`` follows.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agents.metrics import Metrics
from app.worker.faust_sensor import faust_metrics
from tests.ops.metric_refs import family_name, referenced_metrics

#: Faust's own PrometheusMonitor metrics, registered by the worker under this prefix
#: (app/worker/faust_sensor.py, in seconds); checked against what that module exports below.
FAUST_PREFIX = "kairos_faust_"

#: Produced by a collector that reads the broker and RocksDB at scrape time
#: (app/worker/gauges.py), which needs a running worker, so `Metrics()` alone does not
#: have them. The live-worker test (tests/integration) checks them on a real /metrics.
SCRAPE_TIME_METRICS = frozenset(
    {"kairos_consumer_lag", "kairos_state_table_keys", "kairos_state_table_bytes"}
)

#: Series Prometheus itself makes, not the worker.
PROMETHEUS_OWN = frozenset({"up"})


def exported_names(registry: CollectorRegistry) -> set[str]:
    """The names a scrape of ``registry`` can show, as family names (see ``family_name``).

    Read from the metric families, not the samples: a labelled metric with no child yet
    (no event seen) has a family but no sample, and is exported all the same.
    """
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:  # gauge, histogram and summary families are scraped under their own name
            names.add(family.name)
        names.update(family_name(sample.name) for sample in family.samples)
    return names


def _unexported(referenced: dict[str, set[str]], exported: set[str]) -> list[str]:
    return [
        f"{name} (in {', '.join(sorted(referenced[name]))})"
        for name in sorted(set(referenced) - exported)
    ]


def test_every_referenced_metric_is_exported() -> None:
    referenced = {
        name: where
        for name, where in referenced_metrics().items()
        if name.startswith("kairos_")
        and not name.startswith(FAUST_PREFIX)
        and name not in SCRAPE_TIME_METRICS
    }
    assert referenced, "no kairos_* metric found in ops/: is the extractor broken?"
    missing = _unexported(referenced, exported_names(Metrics().registry))
    assert not missing, (
        "referenced in ops/ but not exported by agents.metrics.Metrics:\n" + "\n".join(missing)
    )


def test_every_referenced_faust_metric_exists_in_faust() -> None:
    """The kairos_faust_* names are faust-streaming's, prefixed and in seconds.

    Built by the worker's own factory from faust-streaming's ``FaustMetrics``: an upgrade
    that renames a metric fails here until ``ops/`` follows.
    """
    referenced = {
        name: where for name, where in referenced_metrics().items() if name.startswith(FAUST_PREFIX)
    }
    registry = CollectorRegistry()
    faust_metrics(registry, FAUST_PREFIX.rstrip("_"))
    missing = _unexported(referenced, exported_names(registry))
    assert not missing, "not among Faust's PrometheusMonitor metrics:\n" + "\n".join(missing)


def test_only_kairos_and_prometheus_metrics_are_referenced() -> None:
    """Catches a misspelt prefix, which would otherwise escape the checks above."""
    stray = {
        name: where
        for name, where in referenced_metrics().items()
        if not name.startswith("kairos_") and name not in PROMETHEUS_OWN
    }
    assert not stray, f"metrics that are neither kairos_* nor Prometheus's own: {stray}"


def test_the_exported_names_are_read_from_the_families() -> None:
    """A counter is scraped with _total, an Info with _info, even before any sample."""
    names = exported_names(Metrics().registry)
    assert "kairos_actions_total" in names  # labelled, no child yet
    assert "kairos_ruleset_info" in names
    assert "kairos_decision_latency_seconds" in names
    assert "kairos_actions" not in names
