"""A two-wave campaign on the real broker: push; not opened in the wait, an SMS — once."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, sms_wave

pytestmark = pytest.mark.integration

#: The digital nudge's push, then an SMS unless it was opened within 4 seconds.
SMS_WAVE = sms_wave("4s", ttl="1h")
FAST = {"KAIROS_TIMER_GRACE_S": "1", "KAIROS_TIMER_CHECK_INTERVAL_S": "0.5"}


def _on(records: list[tuple[str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [value for name, value in records if name == topic]


def _opened(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "feedback_id": f"fb-{action['action_id']}",
        "action_id": action["action_id"],
        "customer_id": action["customer_id"],
        "channel": action["channel"],
        "status": "opened",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


def test_the_sms_wave_follows_an_unopened_push_and_not_an_opened_one(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES + SMS_WAVE, **FAST)
    worker = k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-IGNORES", timezone="UTC"), profile("C-OPENS", timezone="UTC"))
    k.send(t.drop_off, drop_off("C-IGNORES", step=4))
    k.send(t.drop_off, drop_off("C-OPENS", step=4))
    pushes = _on(
        k.collect([t.actions(Channel.PUSH)], until=lambda r: len(r) >= 2), t.actions(Channel.PUSH)
    )
    [opens] = [p for p in pushes if p["customer_id"] == "C-OPENS"]
    k.send(t.feedback, _opened(opens))
    records = k.collect(
        [t.actions(Channel.SMS)],
        until=lambda r: (
            len(r) >= 1
            and worker.metric("kairos_timers_total", rule_id="nudge-sms-wave", change="cancelled")
            >= 1
        ),
    )
    [sms] = _on(records, t.actions(Channel.SMS))
    [ignored] = [p for p in pushes if p["customer_id"] == "C-IGNORES"]
    assert (sms["customer_id"], sms["rule_id"]) == ("C-IGNORES", "nudge-sms-wave")
    assert (sms["campaign"], sms["wave"]) == ("loan-dropoff-digital-nudge", 2)
    assert sms["parent_action_id"] == ignored["action_id"]
    time.sleep(3)  # past the opener's wave: nothing more may come
    later = _on(
        k.collect([t.actions(Channel.SMS)], until=lambda r: False, timeout=2),
        t.actions(Channel.SMS),
    )
    assert [a["customer_id"] for a in later] == ["C-IGNORES"]


def test_a_worker_killed_between_the_waves_still_sends_the_second_exactly_once(
    kairos: Any,
) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES + sms_wave("8s", ttl="1h"), **FAST)
    worker = k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-KILLED", timezone="UTC"))
    k.send(t.drop_off, drop_off("C-KILLED", step=4))
    k.collect([t.actions(Channel.PUSH)], until=lambda r: len(r) >= 1)
    worker.kill()  # SIGKILL: the wave's timer is only in the stored state and its changelog
    k.start_worker()
    records = k.collect([t.actions(Channel.SMS)], until=lambda r: len(r) >= 1, timeout=60)
    time.sleep(3)  # any second firing would be on the topic by now
    records = k.collect([t.actions(Channel.SMS)], until=lambda r: False, timeout=2)
    sms = _on(records, t.actions(Channel.SMS))
    assert [a["rule_id"] for a in sms] == ["nudge-sms-wave"], "exactly once"
