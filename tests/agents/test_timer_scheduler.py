"""The pure parts of what SREs and support see: timer gauges, scrape-time gauges, auth."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from agents.metrics import Metrics
from agents.timer_scheduler import TimerIndex
from app.settings import Settings
from app.worker.gauges import StoreSize, WorkerGauges
from app.worker.web import bearer_token_matches
from schemas.codec import decode_event, encode_state
from schemas.state import CustomerState, PendingTimer
from testkit.factories import click

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOKEN = SecretStr("s3cret-token-of-32-characters-xx")


def test_pending_timers_are_counted_by_kind_and_forgotten_when_done() -> None:
    index = TimerIndex(grace=timedelta(seconds=30))
    index.note("C1", T0, ("absence", "deferred"))
    index.note("C2", T0 + timedelta(hours=1), ("deferred",))
    assert index.pending_by_kind() == {"absence": 1, "deferred": 2}
    index.note("C1", T0 + timedelta(minutes=5), ("deferred",))  # the wait ended: one left
    assert index.pending_by_kind() == {"deferred": 2}
    index.note("C2", None, ())
    assert index.pending_by_kind() == {"deferred": 1} and len(index) == 1
    assert [tick.customer_id for tick in index.pop_due(T0 + timedelta(minutes=10))] == ["C1"]


def test_timer_gauges_stay_at_zero_rather_than_vanish() -> None:
    metrics = Metrics()
    metrics.set_timers_pending({"deferred": 3})
    metrics.set_timers_pending({})
    sample = metrics.registry.get_sample_value
    assert sample("kairos_timers_pending", {"kind": "deferred"}) == 0
    assert sample("kairos_timers_pending", {"kind": "absence"}) == 0


def test_lag_and_state_sizes_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    lag = {("kairos.events.app_click", 0): 5}
    sizes = [StoreSize("customer_state", 0, keys=120, bytes=48_000)]
    metrics.registry.register(WorkerGauges(lambda: lag, lambda: sizes))
    sample = metrics.registry.get_sample_value
    clicks_0 = {"topic": "kairos.events.app_click", "partition": "0"}
    assert sample("kairos_consumer_lag", clicks_0) == 5
    lag[("kairos.events.app_click", 0)] = 0  # the next scrape sees the new reading
    assert sample("kairos_consumer_lag", clicks_0) == 0
    assert sample("kairos_state_table_keys", {"table": "customer_state", "partition": "0"}) == 120
    assert sample("kairos_state_table_bytes", {"table": "customer_state", "partition": "0"}) == 48e3


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (f"Bearer {TOKEN.get_secret_value()}", True),
        (f"bearer {TOKEN.get_secret_value()}", True),
        (f"Basic {TOKEN.get_secret_value()}", False),
        ("Bearer wrong-token-of-32-characters-xxx", False),
        (f"Bearer {TOKEN.get_secret_value()[:-1]}", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_the_customer_api_needs_the_exact_bearer_token(header: str | None, accepted: bool) -> None:
    assert bearer_token_matches(header, TOKEN) is accepted


def test_the_customer_api_is_off_without_a_token_and_refuses_a_weak_one() -> None:
    assert Settings(customer_api_token="").customer_api_token is None
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(customer_api_token="password")
    assert "s3cret" not in repr(Settings(customer_api_token=TOKEN.get_secret_value()))


def _stored(customer_id: str, *timers: PendingTimer) -> tuple[bytes, bytes]:
    return customer_id.encode(), encode_state(
        CustomerState(customer_id=customer_id, timers=list(timers))
    )


def test_a_rebuild_finds_the_timers_inside_compressed_states() -> None:
    index = TimerIndex(grace=timedelta(seconds=30))
    start = decode_event(json.dumps(click("C2")).encode())
    waiting = PendingTimer(rule_id="r", due_at=T0, start_event=start, kind="deferred")
    records = [_stored("C1"), _stored("C2", waiting), (b"C3", None)]
    assert asyncio.run(index.rebuild(7, records)) == 1
    assert index.generation == 7 and index.pending_by_kind() == {"deferred": 1}
    assert [tick.customer_id for tick in index.pop_due(T0 + timedelta(minutes=1))] == ["C2"]


def test_a_rebuild_gives_up_when_partitions_move_during_the_scan() -> None:
    index = TimerIndex(grace=timedelta(seconds=30))
    records = [_stored(f"C{i}") for i in range(5_000)]
    assert asyncio.run(index.rebuild(8, records, still_current=lambda: False)) is None
    assert index.generation is None, "the next tick starts over"


def test_late_and_duplicate_events_read_zero_before_the_first_one() -> None:
    sample = Metrics().registry.get_sample_value
    for event_type in ("app_click", "transaction", "drop_off"):
        assert sample("kairos_events_late_total", {"event_type": event_type}) == 0
        assert sample("kairos_events_duplicate_total", {"event_type": event_type}) == 0
