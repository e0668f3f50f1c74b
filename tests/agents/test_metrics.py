"""The evaluations tally reads on /metrics as the Prometheus counter it replaced."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import Metrics


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
