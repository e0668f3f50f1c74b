"""Two workers share the partitions; when one dies the other takes its customers over."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from app.kafka import WorkerProcess
from schemas.actions import Channel, derive_action_id
from testkit.factories import click, profile
from testkit.rulesets import IMMEDIATE_RULES
from tests.integration.conftest import PARTITIONS
from tests.integration.http import get

pytestmark = pytest.mark.integration

TOKEN = "failover-token-0123456789-abcdef"
CUSTOMERS = [f"C-F{i:02d}" for i in range(24)]
RULE = "mortgage-calculator-interest"


def _partitions(worker: WorkerProcess, topic: str) -> set[int]:
    """Input partitions a worker reports lag for: the ones assigned to it."""
    return {
        int(labels["partition"])
        for labels, _ in worker.metric_samples("kairos_consumer_lag", topic=topic)
    }


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.3)


def _served_by(worker: WorkerProcess, customer_id: str) -> str:
    status, _, body = get(worker, f"/customers/{customer_id}", token=TOKEN)
    assert status == 200, (customer_id, status, body)
    return str(body["served_by"])


def test_the_survivor_takes_over_without_losing_or_repeating_a_contact(kairos: Any) -> None:
    k = kairos(
        rules_yaml=IMMEDIATE_RULES,
        KAIROS_CUSTOMER_API_TOKEN=TOKEN,
        KAIROS_LAG_INTERVAL_S="0.5",
    )
    clicks = k.topics.app_click
    first = k.start_worker(KAIROS_STATE_DIR=str(k.workdir / "state-a"))
    second = k.start_worker(KAIROS_STATE_DIR=str(k.workdir / "state-b"))

    def split() -> bool:
        mine, theirs = _partitions(first, clicks), _partitions(second, clicks)
        return bool(mine) and bool(theirs) and mine | theirs == set(range(PARTITIONS))

    _wait(lambda: split() and first.metric("kairos_worker_ready") == 1, 90, "partitions split")
    assert not _partitions(first, clicks) & _partitions(second, clicks)

    k.send_profiles(*(profile(c) for c in CUSTOMERS))
    before = [click(c, screen="mortgage_calculator") for c in CUSTOMERS]
    for event in before:
        k.send(clicks, event)
    _wait(
        lambda: (
            first.metric("kairos_actions_total", channel="push", rule_id=RULE)
            + second.metric("kairos_actions_total", channel="push", rule_id=RULE)
            >= len(CUSTOMERS)
        ),
        60,
        "both halves contacted",
    )

    # Either worker answers for any customer, routing to the partition's owner.
    owners = {c: _served_by(first, c) for c in CUSTOMERS}
    assert set(owners.values()) == {first.base_url, second.base_url}
    assert all(_served_by(second, c) == owners[c] for c in CUSTOMERS[:6])

    # Kill the second worker once everything it did is committed: nothing to redo. Its own
    # commits, not the lag gauge: that is read every 0.5 s and can still say 0 from before
    # the clicks, while the checkpoint holding them (state, then offsets) is not complete.
    def committed_its_clicks() -> bool:
        consumed = second.metric("kairos_events_consumed_total", event_type="app_click")
        committed = second.metric_samples(
            "kairos_faust_topic_partition_offset_commited", topic=clicks
        )  # the next offset per partition: its clicks are all its partitions hold
        return consumed > 0 and sum(value for _, value in committed) >= consumed

    _wait(committed_its_clicks, 30, "the second worker committed its input")
    moved = [c for c in CUSTOMERS if owners[c] == second.base_url]
    second.kill()

    after = [click(c, screen="mortgage_calculator") for c in CUSTOMERS]
    for event in after:
        k.send(clicks, event)
    answers: list[int] = []

    def taken_over() -> bool:
        """Meanwhile support keeps asking: an answer, or 503 with Retry-After, never an error."""
        status, headers, _ = get(first, f"/customers/{moved[0]}", token=TOKEN)
        answers.append(status)
        assert status == 200 or (status == 503 and "Retry-After" in headers), status
        return _partitions(first, clicks) == set(range(PARTITIONS))

    _wait(taken_over, 90, "the takeover")
    print(f"\ncustomer API answers during the takeover: {dict(Counter(answers))}")

    expected = {
        derive_action_id(
            customer_id=e["customer_id"],
            rule_id=RULE,
            rule_version=1,
            channel=Channel.PUSH,
            trigger_event_ids=[e["event_id"]],
        )
        for e in before + after
    }
    records = k.collect(
        [k.topics.actions(Channel.PUSH)],
        until=lambda r: expected <= {v["action_id"] for _, v in r},
        timeout=90,
    )
    delivered = Counter(v["action_id"] for _, v in records)
    assert set(delivered) == expected, f"lost {len(expected - set(delivered))} contacts"
    assert max(delivered.values()) == 1, "an action id was delivered twice"

    # The survivor restored the dead worker's customers from the changelog: their state
    # holds decisions made before the crash and after it.
    _wait(lambda: first.metric("kairos_worker_ready") == 1, 60, "the survivor is ready")
    for customer in moved:
        status, _, body = get(first, f"/customers/{customer}", token=TOKEN)
        assert status == 200 and body["served_by"] == first.base_url
        assert body["state"]["event_counts"] == {"app_click": 2}, customer
        assert len(body["recent_decisions"]) == 2, customer
