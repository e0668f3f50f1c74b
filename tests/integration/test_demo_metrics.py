"""Under demo traffic, a real worker exports every metric the dashboard and alerts use."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.kafka import free_port, terminate
from tests.ops.metric_refs import family_name, referenced_metrics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: Families that must be moving (above zero) once the demo has run for a while.
MOVING = (
    "kairos_events_consumed_total",
    "kairos_events_invalid_total",
    "kairos_rule_evaluations_total",
    "kairos_rule_fires_total",
    "kairos_actions_total",
    "kairos_suppressions_total",
    "kairos_decision_latency_seconds_count",
    "kairos_action_lateness_seconds_count",
    "kairos_state_table_keys",
    "kairos_worker_ready",
    "kairos_faust_messages_received_total",
)


def _scrape(port: int) -> dict[str, float]:
    """Family name -> the sum of its samples (``_count`` kept apart for histograms)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[family_name(sample.name)] += 0.0
            totals[sample.name] += sample.value
    return totals


def _timed_paths(port: int) -> set[str]:
    """The paths of the actions the worker has timed against when they were due."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["path"]
        for family in text_string_to_metric_families(text)
        if family.name == "kairos_action_lateness_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.value > 0
    }


def _crash_and_see_the_demo_restart_its_worker(log: Path, port: int) -> None:
    """SIGKILL the demo's worker: the demo restarts it, and the new one decides again."""
    (pid,) = re.findall(r"Worker pid (\d+) starting", log.read_text())
    os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "restarted as pid" not in log.read_text():
        time.sleep(0.5)
    assert "Worker exited with code -9; restarted as pid" in log.read_text()
    consumed = 0.0
    while time.monotonic() < deadline and consumed <= 0:
        try:
            consumed = _scrape(port).get("kairos_events_consumed_total", 0.0)
        except OSError:
            consumed = 0.0
        time.sleep(1)
    assert consumed > 0, "the restarted worker did not consume"


def test_demo_traffic_moves_every_metric_the_dashboard_and_alerts_use(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--duration", "120", "--web-port", str(port)],
        cwd=REPO,
        env={**os.environ, "KAIROS_LAG_INTERVAL_S": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 150
        scraped: dict[str, float] = {}
        paths: set[str] = set()
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                scraped, paths = _scrape(port), _timed_paths(port)
            except OSError:
                scraped, paths = {}, set()
            if (
                all(scraped.get(name, 0) > 0 for name in MOVING)
                and scraped.get("kairos_consumer_lag") is not None
                and paths - {"direct"}
            ):
                break
            time.sleep(1)
        still = [name for name in MOVING if scraped.get(name, 0) <= 0]
        assert not still, f"not moving under demo traffic: {still}; see {tmp_path}/demo.log"
        # contacts that waited (an absence wait, quiet hours, the RM queue) are timed too
        assert paths - {"direct"}, f"only {paths} timed; see {tmp_path}/demo.log"
        missing = {
            name: sorted(where)
            for name, where in referenced_metrics().items()
            if name != "up" and name not in scraped  # `up` is Prometheus's own
        }
        assert not missing, f"referenced but not exported by a live worker: {missing}"
        _crash_and_see_the_demo_restart_its_worker(tmp_path / "demo.log", port)
    finally:
        terminate(demo, timeout=30)
        log.close()
