"""The metric-name extractor on the PromQL shapes that trip a naive one."""

from __future__ import annotations

import pytest

from tests.ops.metric_refs import (
    UncheckableExpressionError,
    alert_expressions,
    dashboard_expressions,
    family_name,
    metric_names,
    template_queries,
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param("up", {"up"}, id="bare name"),
        pytest.param('up{job="kairos"} == 0', {"up"}, id="matcher and comparison"),
        pytest.param(
            "sum by (topic) (kairos_consumer_lag)",
            {"kairos_consumer_lag"},
            id="aggregation with by before the argument: topic is a label",
        ),
        pytest.param(
            "sum(rate(kairos_actions_total[5m])) by (channel, rule_id)",
            {"kairos_actions_total"},
            id="by after the argument; a duration in brackets",
        ),
        pytest.param(
            "sum without (instance, partition) (kairos_state_table_keys)",
            {"kairos_state_table_keys"},
            id="without clause",
        ),
        pytest.param(
            "histogram_quantile(0.99, sum by (le) (rate("
            'kairos_decision_latency_seconds_bucket{since="ingested", le!="+Inf"}[5m])))',
            {"kairos_decision_latency_seconds_bucket"},
            id="histogram: function names, label names and values are not metrics",
        ),
        pytest.param(
            "sum(rate(kairos_events_invalid_total[5m]))"
            " / clamp_min(sum(rate(kairos_events_consumed_total[5m])), 1e-9) > 0.01",
            {"kairos_events_invalid_total", "kairos_events_consumed_total"},
            id="scientific notation is a number, not the identifier e",
        ),
        pytest.param(
            "deriv(sum by (topic) (max by (topic, partition) (kairos_consumer_lag))[10m:1m]) > 0",
            {"kairos_consumer_lag"},
            id="subquery",
        ),
        pytest.param(
            "max_over_time(rate(kairos_rule_errors_total[1m])[30m:5m]) > 0",
            {"kairos_rule_errors_total"},
            id="range inside a subquery",
        ),
        pytest.param(
            "(sum(increase(kairos_actions_total[30m])) or vector(0)) == 0"
            " and on() kairos_worker_ready",
            {"kairos_actions_total", "kairos_worker_ready"},
            id="set operators, vector(), on() with no labels",
        ),
        pytest.param(
            "kairos_rules_loaded * on (instance) group_left (version) kairos_ruleset_info",
            {"kairos_rules_loaded", "kairos_ruleset_info"},
            id="group_left with labels",
        ),
        pytest.param(
            "kairos_rules_loaded unless ignoring(job) kairos_worker_ready > bool 0",
            {"kairos_rules_loaded", "kairos_worker_ready"},
            id="unless, ignoring, bool",
        ),
        pytest.param(
            "rate(kairos_events_consumed_total[5m] offset 1h)"
            " - rate(kairos_events_consumed_total[5m] @ 1700000000)",
            {"kairos_events_consumed_total"},
            id="offset and @ modifiers",
        ),
        pytest.param(
            'label_replace(kairos_worker_ready, "worker", "$1", "instance", "(.*):.*")',
            {"kairos_worker_ready"},
            id="strings that look like labels or contain regex groups",
        ),
        pytest.param(
            "count_values('version', kairos_rules_loaded)",
            {"kairos_rules_loaded"},
            id="single-quoted string",
        ),
        pytest.param(
            '{__name__="kairos_worker_ready", instance="a"}',
            {"kairos_worker_ready"},
            id="name given as the __name__ matcher",
        ),
        pytest.param(
            "sum by (event_type) "
            '(rate(kairos_events_consumed_total{instance=~"$instance"}[$__rate_interval]))',
            {"kairos_events_consumed_total"},
            id="Grafana variables",
        ),
        pytest.param(
            'sum(increase(kairos_ruleset_swaps_total{instance=~"${instance:regex}"}[$__range]))',
            {"kairos_ruleset_swaps_total"},
            id="Grafana variable with a format",
        ),
        pytest.param(
            'label_values(up{job="kairos"}, instance)',
            {"up"},
            id="Grafana label_values: the label is not a metric",
        ),
        pytest.param(
            "recording:rule_name:rate5m > 0 AND inf > NaN",
            {"recording:rule_name:rate5m"},
            id="recording-rule names with colons; case-insensitive keywords",
        ),
        pytest.param("topk(5, kairos_x2_total)", {"kairos_x2_total"}, id="digits in a name"),
        pytest.param("0x1F + .5 + 2.", set(), id="hex and bare decimals"),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_a_name_selected_by_regex_cannot_be_checked() -> None:
    with pytest.raises(UncheckableExpressionError, match="by pattern"):
        metric_names('{__name__=~"kairos_.*"}')


@pytest.mark.parametrize(
    ("sample", "family"),
    [
        ("kairos_decision_latency_seconds_bucket", "kairos_decision_latency_seconds"),
        ("kairos_decision_latency_seconds_sum", "kairos_decision_latency_seconds"),
        ("kairos_decision_latency_seconds_count", "kairos_decision_latency_seconds"),
        ("kairos_actions_total", "kairos_actions_total"),  # counters keep _total
        ("kairos_ruleset_info", "kairos_ruleset_info"),
        ("kairos_worker_ready", "kairos_worker_ready"),
    ],
)
def test_family_name(sample: str, family: str) -> None:
    assert family_name(sample) == family


def test_the_repository_files_are_read() -> None:
    """Guards against the extractor silently finding nothing to check."""
    alerts = alert_expressions()
    assert "KairosWorkerDown" in alerts
    assert len(alerts) >= 8
    targets = dashboard_expressions()
    assert len(targets) >= 15
    assert any("kairos_timers_pending" in expr for expr in targets.values())
    assert template_queries()
