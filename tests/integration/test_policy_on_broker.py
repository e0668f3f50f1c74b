"""Contact policy through the real worker: quiet-hours deferral, and consent withdrawal."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.actions import Channel
from tests.factories import click, nighttime_zone, now_iso, profile

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
    assert k.collect([k.topics.actions(Channel.SMS)], until=lambda r: False, timeout=2) == []
