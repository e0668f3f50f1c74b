"""Contact policy through the real worker: quiet-hours deferral, and consent withdrawal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, daytime_zone, drop_off, nighttime_zone, now_iso, profile
from tests.integration.http import get

pytestmark = pytest.mark.integration

NIGHT_POLICY = """
policy:
  caps:
    - {channel: sms, max: 1, per: day}
  quiet_hours:
    - {channels: [sms, push], start: "21:00", end: "08:00", action: defer}
rules:
  - {id: offer, version: 1, event: app_click, when: 'event.screen == "offer"',
     channels: [sms], template: t, ttl: 24h}
"""


def test_a_night_contact_is_deferred_then_cancelled_by_a_consent_withdrawal(kairos: Any) -> None:
    k = kairos(rules_yaml=NIGHT_POLICY)
    worker = k.start_worker()
    night = nighttime_zone()
    k.send_profiles(profile("C-NIGHT", timezone=night))
    k.send(k.topics.app_click, click("C-NIGHT", screen="offer"))
    assert worker.wait_metric("kairos_timers_total", 1, rule_id="offer", change="deferred") == 1
    withdrawn = profile(
        "C-NIGHT",
        timezone=night,
        consent={"sms": False, "push": True, "rm": False},
        updated_at=now_iso(),
    )
    k.send(k.topics.profile, withdrawn)

    records = k.collect([k.topics.decisions], until=lambda r: len(r) >= 2, timeout=30)
    outcomes = [(v["outcome"], v["reason_code"]) for _, v in records]
    assert outcomes == [("deferred", "quiet_hours"), ("suppressed", "consent_withdrawn")]
    assert "deferred to" in records[0][1]["reason"]
    assert (
        worker.metric("kairos_suppressions_total", reason="consent_withdrawn", rule_id="offer") == 1
    )
    assert worker.metric("kairos_deferrals_total", reason="quiet_hours", rule_id="offer") == 1
    assert k.collect([k.topics.actions(Channel.SMS)], until=lambda r: False, timeout=2) == []


RM_CAPACITY = """
policy:
  rm_capacity: {per: rm, daily_limit: 1, when_full: next_channel}
rules:
  - {id: call, version: 1, event: drop_off, channels: [rm, sms], template: t}
"""


def test_an_rms_daily_capacity_is_shared_across_partitions(kairos: Any) -> None:
    k = kairos(rules_yaml=RM_CAPACITY)
    worker = k.start_worker()
    consent = {"sms": True, "push": True, "rm": True}
    noon = daytime_zone()
    customers = ["C-RM-A", "C-RM-B", "C-RM-C"]  # keys spread over partitions, one RM
    k.send_profiles(*(profile(c, rm_id="RM9", consent=consent, timezone=noon) for c in customers))
    for customer in customers:
        k.send(k.topics.drop_off, drop_off(customer))

    topics = [k.topics.actions(Channel.RM), k.topics.actions(Channel.SMS)]
    records = k.collect(topics, until=lambda r: len(r) >= 3, timeout=30)
    channels = sorted(t.rsplit(".", 1)[1] for t, _ in records)
    assert channels == ["rm", "sms", "sms"]
    assert len({v["customer_id"] for _, v in records}) == 3
    assert worker.metric("kairos_rm_capacity_total", outcome="granted") == 1
    assert worker.metric("kairos_rm_capacity_total", outcome="full") == 2


TOKEN = "test-token-0123456789-abcdefghij"


def _latest_decisions(
    worker: Any, customer: str, until: Callable[[list[tuple[str, str, str]]], bool]
) -> list[dict[str, Any]]:
    """``/customers/{id}``'s latest decisions once ``until`` their (rule, outcome, channel).

    The state is written after the outputs are acknowledged, so it lags the topics a little.
    """
    deadline = time.monotonic() + 15
    while True:
        status, _, body = get(worker, f"/customers/{customer}", token=TOKEN)
        decisions = list(body.get("recent_decisions", [])) if status == 200 else []
        seen = [(d["rule_id"], d["outcome"], d["channel"]) for d in decisions]
        if until(seen) or time.monotonic() > deadline:
            return decisions
        time.sleep(0.2)


def test_an_rm_contact_shows_in_the_customers_latest_decisions(kairos: Any) -> None:
    """The RM's owner decides on another partition; the customer's state still records it.

    The first customer gets the RM's one contact of the day; the second is refused and falls
    back to SMS, and shows that SMS, not an RM contact that never went out.
    """
    k = kairos(rules_yaml=RM_CAPACITY, KAIROS_CUSTOMER_API_TOKEN=TOKEN)
    worker = k.start_worker()
    consent = {"sms": True, "push": True, "rm": True}
    noon = daytime_zone()
    called, refused = "C-RM-CALLED", "C-RM-REFUSED"
    k.send_profiles(
        *(profile(c, rm_id="RM5", consent=consent, timezone=noon) for c in (called, refused))
    )
    k.send(k.topics.drop_off, drop_off(called))
    rm_topic = k.topics.actions(Channel.RM)
    (action,) = [v for _, v in k.collect([rm_topic], until=lambda r: len(r) >= 1)]
    k.send(k.topics.drop_off, drop_off(refused))
    k.collect([k.topics.actions(Channel.SMS)], until=lambda r: len(r) >= 1)

    rm_call = [("call", "sent", "rm")]
    (decision,) = _latest_decisions(worker, called, until=lambda seen: seen == rm_call)
    assert (decision["rule_id"], decision["outcome"], decision["channel"]) == rm_call[0]
    published = k.collect([k.topics.decisions], until=lambda r: len(r) >= 2)
    ids = {v["decision_id"] for _, v in published if v["action_id"] == action["action_id"]}
    assert ids == {decision["decision_id"]}, "the decision the RM's owner published"

    assert worker.wait_metric("kairos_rm_capacity_total", 1, outcome="full") == 1
    sms = [("call", "sent", "sms")]
    (fallback,) = _latest_decisions(worker, refused, until=lambda seen: seen == sms)
    assert (fallback["rule_id"], fallback["outcome"], fallback["channel"]) == sms[0]
