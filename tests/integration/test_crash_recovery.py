"""A worker killed mid-stream loses no due contact, and every duplicate is absorbable by id."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from typing import Any

import pytest

from schemas.actions import Channel, derive_action_id
from testkit.factories import click, profile
from testkit.rulesets import IMMEDIATE_RULES

pytestmark = pytest.mark.integration

CUSTOMERS = [f"C-K{i:03d}" for i in range(60)]


@pytest.mark.parametrize(
    "local_state",
    [
        "kept",
        # Lost with the machine: recovery must replay the changelog, so Faust starts fetching
        # during recovery, the path where it used to drop events (see app/worker/faust_fixes.py).
        "lost",
    ],
)
def test_sigkill_mid_stream_loses_nothing(kairos: Any, local_state: str) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    worker = k.start_worker()
    k.send_profiles(*(profile(c) for c in CUSTOMERS))
    events = [click(c, screen="mortgage_calculator") for _ in range(5) for c in CUSTOMERS]
    expected = {
        derive_action_id(
            customer_id=e["customer_id"],
            rule_id="mortgage-calculator-interest",
            rule_version=1,
            channel=Channel.PUSH,
            trigger_event_ids=[e["event_id"]],
        )
        for e in events
    }
    half = len(events) // 2
    for event in events[:half]:
        k.producer.send(k.topics.app_click, key=event["customer_id"].encode(), value=_raw(event))
    k.producer.flush()
    worker.wait_metric(
        "kairos_actions_total", 20, channel="push", rule_id="mortgage-calculator-interest"
    )
    worker.kill()  # SIGKILL: no flush, no commit, no goodbye
    if local_state == "lost":
        shutil.rmtree(k.env["KAIROS_STATE_DIR"])
    for event in events[half:]:
        k.producer.send(k.topics.app_click, key=event["customer_id"].encode(), value=_raw(event))
    k.producer.flush()

    started = time.monotonic()
    restarted = k.start_worker()
    records = k.collect(
        [k.topics.actions(Channel.PUSH)],
        until=lambda r: expected <= {v["action_id"] for _, v in r},
        timeout=90,
    )
    recovered_in = time.monotonic() - started
    seen = Counter(v["action_id"] for _, v in records)
    if set(seen) != expected:  # say where it stopped: consuming, deciding or producing
        consumed = restarted.metric("kairos_events_consumed_total", event_type="app_click")
        sent = restarted.metric(
            "kairos_actions_total", channel="push", rule_id="mortgage-calculator-interest"
        )
        log = (k.workdir / "worker-1.log").read_text()[-3000:]
        pytest.fail(
            f"lost {len(expected - set(seen))} of {len(expected)} contacts; the restarted worker "
            f"consumed {consumed:.0f} clicks and sent {sent:.0f} actions\n{log}"
        )
    duplicates = sum(n - 1 for n in seen.values())
    print(
        f"\n{len(events)} events, {len(expected)} contacts due, {len(seen)} delivered, "
        f"{duplicates} duplicate deliveries (same action_id), recovered in {recovered_in:.1f}s"
    )


def _raw(event: dict[str, Any]) -> bytes:
    import json

    return json.dumps(event).encode()
