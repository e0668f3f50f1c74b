"""Features, absence timers and the example pack on a real worker and the real broker."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, daytime_zone, drop_off, profile, transaction

pytestmark = pytest.mark.integration

WAIT_FOR_RESUME = """
rules:
  - id: not-resumed
    version: 1
    event: drop_off
    when: event.step >= 3
    unless:
      within: {within}
      events:
        - {{event: app_click, when: "event.screen == start.flow"}}
    channels: [push]
    template: resume
    params: {{flow: "{{{{ event.flow }}}}"}}
"""
FAST_TIMERS = {"KAIROS_TIMER_GRACE_S": "0.5", "KAIROS_TIMER_CHECK_INTERVAL_S": "0.2"}


def _push(k: Any, at_least: int, timeout: float) -> list[dict[str, Any]]:
    topic = k.topics.actions(Channel.PUSH)
    return [v for _, v in k.collect([topic], until=lambda r: len(r) >= at_least, timeout=timeout)]


def test_absence_timer_fires_once_for_the_customer_who_did_not_come_back(kairos: Any) -> None:
    k = kairos(rules_yaml=WAIT_FOR_RESUME.format(within="3s"), **FAST_TIMERS)
    worker = k.start_worker()
    k.send_profiles(profile("C-GONE"), profile("C-BACK"))
    gone = drop_off("C-GONE")
    k.send(k.topics.drop_off, gone)
    k.send(k.topics.drop_off, drop_off("C-BACK"))
    # Topics are consumed independently: let both waits start before the customer returns.
    assert worker.wait_metric("kairos_timers_total", 2, rule_id="not-resumed", change="scheduled")
    k.send(k.topics.app_click, click("C-BACK", screen="personal_loan_application"))

    actions = _push(k, at_least=1, timeout=30)
    assert [(a["customer_id"], a["trigger_event_ids"]) for a in actions] == [
        ("C-GONE", [gone["event_id"]])
    ]
    assert worker.wait_metric("kairos_timers_total", 1, rule_id="not-resumed", change="cancelled")
    time.sleep(3)  # a second firing would have happened by now
    assert len(_push(k, at_least=2, timeout=2)) == 1
    assert worker.metric("kairos_timers_total", rule_id="not-resumed", change="fired") == 1


def test_a_pending_timer_survives_a_restart_with_lost_local_state(kairos: Any) -> None:
    k = kairos(rules_yaml=WAIT_FOR_RESUME.format(within="10s"), **FAST_TIMERS)
    worker = k.start_worker()
    k.send_profiles(profile("C-WAIT"))
    k.send(k.topics.drop_off, drop_off("C-WAIT"))
    assert worker.wait_metric("kairos_timers_total", 1, rule_id="not-resumed", change="scheduled")
    worker.stop()
    shutil.rmtree(Path(k.env["KAIROS_STATE_DIR"]))  # recovery must come from the changelog

    restarted = k.start_worker()
    actions = _push(k, at_least=1, timeout=40)
    assert [a["customer_id"] for a in actions] == ["C-WAIT"]
    time.sleep(2)
    assert len(_push(k, at_least=2, timeout=2)) == 1
    assert restarted.metric("kairos_timers_total", rule_id="not-resumed", change="fired") == 1


def test_the_example_pack_through_the_broker(kairos: Any) -> None:
    k = kairos()  # the example rules, as shipped
    worker = k.start_worker()
    noon = daytime_zone()  # the example policy's quiet hours must not defer the offer
    k.send_profiles(profile("C-RICH", timezone=noon), profile("C-BROWSER", timezone=noon))
    k.send(k.topics.app_click, click("C-BROWSER", screen="investment_funds"))
    # Topics are consumed independently: the browsing must be known before the salary lands.
    assert worker.wait_metric("kairos_events_consumed_total", 1, event_type="app_click") == 1
    for customer in ("C-RICH", "C-BROWSER"):
        k.send(k.topics.transaction, transaction(customer, amount="15000.00", category="salary"))

    records = k.collect(
        [k.topics.actions(Channel.PUSH), k.topics.decisions],
        until=lambda r: len(r) >= 2,
        timeout=30,
    )
    actions = [v for t, v in records if t == k.topics.actions(Channel.PUSH)]
    assert [(a["customer_id"], a["rule_id"]) for a in actions] == [
        ("C-RICH", "salary-wealth-offer")
    ]
    assert actions[0]["params"] == {"amount": "15000.00", "currency": "EUR"}
