"""The bulk collectors read on /metrics as the Prometheus metrics they replaced."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import LATENESS_BUCKETS, BulkHistogram, Metrics


def _samples(text: bytes) -> dict[str, tuple[str, float]]:
    return {
        sample.labels["rule_id"]: (family.type, sample.value)
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == "kairos_rule_evaluations_total"
    }


def test_rule_evaluations_are_counted_in_bulk_and_exposed_as_a_counter() -> None:
    metrics = Metrics()
    metrics.declare_rule("quiet", channels=["sms"], holdout=False, goal=False)
    metrics.rule_evaluations.count(["busy", "other", "busy"])
    metrics.rule_evaluations.count(["busy"])
    whole = _samples(generate_latest(metrics.registry))
    assert whole == {
        "quiet": ("counter", 0.0),  # declared: present at 0 before its first evaluation
        "busy": ("counter", 3.0),
        "other": ("counter", 1.0),
    }
    named = metrics.registry.restricted_registry(["kairos_rule_evaluations_total"])
    assert _samples(generate_latest(named)) == whole, "asked for by name, as /metrics allows"


@settings(max_examples=200, deadline=None)
@given(
    observations=st.lists(
        st.tuples(
            st.sampled_from([("sms", "direct"), ("push", "timer"), ("rm", "rm_queue")]),
            st.floats(min_value=0, allow_nan=False)  # huge and infinite too: year-1 dates
            | st.sampled_from(LATENESS_BUCKETS),  # on a bound: counted in that bucket (le)
        ),
        max_size=50,
    )
)
def test_bulk_histogram_reads_as_the_prometheus_histogram_it_replaced(
    observations: list[tuple[tuple[str, str], float]],
) -> None:
    """Same buckets, counts and sums on /metrics as prometheus-client's Histogram."""
    bulk_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram(
        "lateness_seconds", "doc", ["channel", "path"], LATENESS_BUCKETS, bulk_registry
    )
    reference = Histogram(
        "lateness_seconds",
        "doc",
        ["channel", "path"],
        buckets=LATENESS_BUCKETS,
        registry=reference_registry,
    )
    bulk.declare("sms", "direct")
    reference.labels("sms", "direct")
    for labels, amount in observations:
        bulk.observe(labels, amount)
        reference.labels(*labels).observe(amount)
    assert _histogram(bulk_registry) == _histogram(reference_registry)


def _histogram(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): round(sample.value, 6)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_bulk_histogram_refuses_what_a_histogram_would() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="distinct and increasing"):
        BulkHistogram("a_seconds", "doc", ["x"], (1.0, 0.5), registry)
    bulk = BulkHistogram("b_seconds", "doc", ["x", "y"], (1.0,), registry)
    with pytest.raises(ValueError, match="2 label values"):
        bulk.observe(("only-one",), 0.1)
