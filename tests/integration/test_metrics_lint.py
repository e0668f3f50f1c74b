"""A running worker's ``/metrics``, under traffic, passes ``promtool check metrics``.

The unit test (``tests/app/test_metrics_exposition.py``) builds the registry as the worker
does; this one scrapes the worker itself, so whatever is registered only at run time
(Faust's sensor once the app starts, the scrape-time gauges, series that appear with the
first event) is linted too. Skipped without promtool unless ``KAIROS_REQUIRE_OPS_TOOLS=1``.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, profile
from testkit.rulesets import IMMEDIATE_RULES
from tests.ops import tools

pytestmark = pytest.mark.integration


def test_a_running_workers_metrics_pass_promtool(kairos: Any) -> None:
    promtool = tools.promtool()  # skip (or fail, in CI) before starting anything
    k = kairos(rules_yaml=IMMEDIATE_RULES, KAIROS_LAG_INTERVAL_S="0.5")
    worker = k.start_worker()
    k.send_profiles(profile("C-LINT"))
    k.send(k.topics.app_click, click("C-LINT", screen="mortgage_calculator"))
    k.send(k.topics.app_click, b"{not json", key=b"C-LINT")  # a dead letter too
    k.collect([k.topics.actions(Channel.PUSH)], until=lambda records: len(records) >= 1)
    worker.wait_metric("kairos_events_invalid_total", 1, reason="malformed_json")
    worker.wait_metric("kairos_faust_rebalance_done_latency_seconds_count", 1)

    with urllib.request.urlopen(worker.base_url + "/metrics", timeout=5) as response:
        scrape = response.read().decode()

    assert "kairos_consumer_lag" in scrape and "kairos_faust_" in scrape
    assert "_created" not in scrape, "prometheus_client's _created series are switched off"
    assert "kairos_faust_events_runtime_seconds" in scrape
    assert "kairos_faust_events_runtime_ms" not in scrape, "Faust's milliseconds are seconds"
    result = tools.run([promtool, "check", "metrics"], stdin=scrape)
    assert result.returncode == 0, result.stdout + result.stderr
