"""Channel feedback on the real broker: a hard bounce reroutes the next contact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES

pytestmark = pytest.mark.integration


def _on(records: list[tuple[str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [value for name, value in records if name == topic]


def test_a_hard_bounce_on_push_makes_the_next_contact_go_by_sms(kairos: Any) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    worker = k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-FB", timezone="UTC"))
    k.send(t.drop_off, drop_off("C-FB", step=4))
    first = k.collect([t.actions(Channel.PUSH)], until=lambda r: len(r) >= 1)
    [push] = _on(first, t.actions(Channel.PUSH))
    k.send(
        t.feedback,
        {
            "feedback_id": "fb-bounce-1",
            "action_id": push["action_id"],
            "customer_id": "C-FB",
            "channel": "push",
            "status": "failed",
            "failure": "hard",
            "reason": "device token not registered",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    labels = {"channel": "push", "status": "failed", "result": "applied"}
    assert worker.wait_metric("kairos_feedback_total", 1, **labels) == 1
    k.send(t.app_click, click("C-FB", screen="mortgage_calculator"))
    records = k.collect([t.actions(Channel.SMS)], until=lambda r: len(r) >= 1)
    [sms] = _on(records, t.actions(Channel.SMS))
    assert sms["rule_id"] == "mortgage-calculator-interest"
    assert "push: hard bounce" in sms["reason"]
