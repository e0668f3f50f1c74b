"""``kairos generate --to-kafka`` feeds a real worker, as the compose generator service does."""

from __future__ import annotations

from typing import Any

import pytest

from app.cli import main

pytestmark = pytest.mark.integration


def test_generated_traffic_reaches_the_worker_and_poison_the_dead_letter_topic(
    kairos: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = kairos()  # the example rules
    worker = k.start_worker()
    for name, value in k.env.items():
        monkeypatch.setenv(name, value)
    argv = ["generate", "--to-kafka", "--rate", "3000", "--customers", "30", "--days", "0.5"]
    assert main([*argv, "--poison-every", "50"]) == 0

    consumed = worker.wait_metric("kairos_events_consumed_total", 30, event_type="profile")
    assert consumed == 30
    clicks = worker.wait_metric("kairos_events_consumed_total", 100, event_type="app_click")
    assert clicks >= 100, "at a fixed rate, simulated time does not hold the traffic back"
    records = k.collect([k.topics.dead_letter], until=lambda r: len(r) >= 2)
    assert len(records) >= 2 and all(value["reason"] for _, value in records)
