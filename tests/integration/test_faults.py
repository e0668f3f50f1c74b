"""The cheap scenarios of the fault suite (``bench/faults.py``) on the session broker.

The bench owns the scenarios and the accounting; these tests only run them small and
assert the targets of issue 7: nothing lost, no duplicate ``action_id``, no human needed.
SIGKILL and broker restart stay in the bench (slow; the crash is also covered by
test_crash_recovery.py and test_failover.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from app.kafka import EmbeddedBroker
from bench.faults import Row, Size, clock_jumps, failing_deploy, late_events, poison

pytestmark = pytest.mark.integration

SMALL = Size(customers=40, events=400, rate=200.0, settle_timeout=60.0)

Scenario = Callable[[EmbeddedBroker, Path, Size], Row]
SCENARIOS: dict[str, Scenario] = {
    "poison": poison,
    "poison_1mb": lambda broker, work, size: poison(broker, work, size, large=True),
    "failing_deploy": failing_deploy,
    "late_and_out_of_order": late_events,
    "clock_jumps": lambda broker, work, size: clock_jumps(broker, work, size, timedelta(hours=6)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_loses_and_repeats_nothing(name: str, broker: EmbeddedBroker, tmp_path: Path) -> None:
    row = SCENARIOS[name](broker, tmp_path, SMALL)
    print(f"\n{row.scenario}: " + "; ".join(row.notes))
    assert row.failures == []
    assert row.events_in >= SMALL.events
    assert row.broker_lost == 0
    assert row.events_lost == 0
    assert row.actions_out == row.actions_expected > 0
    assert row.duplicate_action_ids == 0
    assert row.human_restart == "no"
