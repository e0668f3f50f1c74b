"""Channel feedback on the real broker: what a channel reports changes the next contact.

* a hard bounce reroutes the next contact to the rule's next channel;
* an unsubscribe withdraws that channel's consent and cancels the contact deferred on it:
  the deferral falls due and nothing goes out, and the next contact skips the channel;
* contacts the customer ignored in a row rest the channel (``policy.fatigue``), and one
  engagement ends the streak.

A contact deferred by quiet hours waits for the customer's morning, hours away. So that
it falls due within the test, the unsubscribe test runs the worker on the simulation clock
the demo uses (``KAIROS_CLOCK_*``: 900 simulated seconds a second) and stamps everything it
sends from the same clock; nothing in the engine or on the broker is replaced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.actions import Channel
from testkit.factories import click, daytime_zone, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES
from tests.integration.conftest import KairosUnderTest

pytestmark = pytest.mark.integration

Records = list[tuple[str, dict[str, Any]]]


def _on(records: Records, topic: str) -> list[dict[str, Any]]:
    return [value for name, value in records if name == topic]


def _report(action: dict[str, Any], status: str, at: datetime | None = None) -> dict[str, Any]:
    """A channel's report of ``status`` on ``action``."""
    return {
        "feedback_id": f"fb-{status}-{action['action_id']}",
        "action_id": action["action_id"],
        "customer_id": action["customer_id"],
        "channel": action["channel"],
        "status": status,
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
    }


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


# -- an unsubscribe cancels the contact deferred on that channel ------------------------------

#: Quiet hours on SMS only: the offer prefers SMS, and goes by push when SMS may not be used.
QUIET_SMS = """
policy:
  quiet_hours:
    - {channels: [sms], start: "21:00", end: "08:00", action: defer}
rules:
  - {id: offer, version: 1, event: app_click, when: 'event.screen == "offer"',
     channels: [sms, push], template: offer, ttl: 24h}
"""


@dataclass(frozen=True)
class SimClock:
    """The worker's simulation clock (``agents.clock.warped``), read the same way here."""

    origin: datetime
    wall_origin: float
    speed: float

    @classmethod
    def from_now(cls, speed: float) -> SimClock:
        wall = time.time()
        return cls(datetime.fromtimestamp(wall, UTC), wall, speed)

    def env(self) -> dict[str, str]:
        return {
            "KAIROS_CLOCK_ORIGIN": self.origin.isoformat(),
            "KAIROS_CLOCK_WALL_ORIGIN": repr(self.wall_origin),
            "KAIROS_CLOCK_SPEED": repr(self.speed),
        }

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.time() - self.wall_origin) * self.speed)

    def sleep_until(self, moment: datetime) -> None:
        time.sleep(max((moment - self.now()).total_seconds(), 0.0) / self.speed)


def _zone_at(local_hour: int, at: datetime) -> str:
    """A whole-hour IANA zone whose local time at ``at`` is ``local_hour``:MM."""
    offset = (local_hour - at.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/ names invert the sign


def _early_morning_zone(at: datetime) -> str:
    """A zone where ``at`` is 45 to 105 minutes before the 08:00 end of the quiet hours."""
    return _zone_at(7 if at.minute <= 15 else 6, at)


def test_an_unsubscribe_withdraws_consent_and_cancels_the_contact_deferred_on_that_channel(
    kairos: Callable[..., KairosUnderTest],
) -> None:
    clock = SimClock.from_now(speed=900.0)  # a simulated hour every 4 s
    k = kairos(rules_yaml=QUIET_SMS, KAIROS_TIMER_CHECK_INTERVAL_S="0.2", **clock.env())
    worker = k.start_worker()
    t = k.topics
    sms_topic, push_topic = t.actions(Channel.SMS), t.actions(Channel.PUSH)

    def offer_click() -> dict[str, Any]:
        return click("C-UNSUB", screen="offer", occurred_at=clock.now().isoformat())

    def customer_in(zone: str) -> dict[str, Any]:
        return profile("C-UNSUB", timezone=zone, updated_at=clock.now().isoformat())

    # by day, the offer goes by SMS: the contact the customer will unsubscribe from
    k.send_profiles(customer_in(_zone_at(12, clock.now())))
    k.send(t.app_click, offer_click())
    [first_sms] = _on(k.collect([sms_topic], until=lambda r: len(r) >= 1), sms_topic)
    # where it is early morning now, the next offer is deferred to 08:00
    k.send_profiles(customer_in(_early_morning_zone(clock.now())))
    deferred_click = offer_click()
    k.send(t.app_click, deferred_click)
    assert worker.wait_metric("kairos_deferrals_total", 1, reason="quiet_hours", rule_id="offer")
    # the customer unsubscribes from SMS at the provider before then
    k.send(t.feedback, _report(first_sms, "unsubscribed", at=clock.now()))
    unsubscribed = worker.wait_metric(
        "kairos_feedback_total", 1, channel="sms", status="unsubscribed", result="applied"
    )
    assert unsubscribed == 1
    unsubscribed_at = clock.now()

    decisions = _on(k.collect([t.decisions], until=lambda r: len(r) >= 3), t.decisions)
    assert [(d["outcome"], d["reason_code"], d["channel"]) for d in decisions] == [
        ("sent", "rule_matched", "sms"),
        ("deferred", "quiet_hours", "sms"),
        ("suppressed", "consent_withdrawn", "sms"),
    ]
    assert decisions[2]["trigger_event_ids"] == [deferred_click["event_id"]]
    deferred_to = re.search(r"deferred to (\S+)$", decisions[1]["reason"])
    assert deferred_to is not None, decisions[1]["reason"]
    due = datetime.fromisoformat(deferred_to.group(1))
    assert unsubscribed_at < due, "the test was too slow: the deferral was due already"

    # 08:00 comes and goes: the cancelled contact stays cancelled, by SMS or by push
    clock.sleep_until(due + timedelta(minutes=15))  # 1 s; the scheduler looks every 0.2 s
    assert worker.metric("kairos_timers_total", rule_id="offer", change="cancelled") == 1
    assert worker.metric("kairos_timers_total", rule_id="offer", change="fired") == 0
    # and the next offer skips SMS, which the customer no longer consents to
    later_click = offer_click()
    k.send(t.app_click, later_click)
    records = k.collect(
        [t.decisions, sms_topic, push_topic],
        until=lambda r: len(_on(r, t.decisions)) >= 4 and len(_on(r, push_topic)) >= 1,
    )
    # read again for a while (the scheduler looks every 0.2 s): nothing else may come
    records = k.collect([t.decisions, sms_topic, push_topic], until=lambda r: False, timeout=1.5)
    decisions = _on(records, t.decisions)
    assert [(d["outcome"], d["channel"], d["trigger_event_ids"]) for d in decisions[3:]] == [
        ("sent", "push", [later_click["event_id"]])
    ]
    assert [a["action_id"] for a in _on(records, sms_topic)] == [first_sms["action_id"]]
    [push] = _on(records, push_topic)
    assert push["trigger_event_ids"] == [later_click["event_id"]]
    assert "sms: no consent" in push["reason"]
    assert worker.metric("kairos_suppressions_total", reason="consent_withdrawn") == 1


# -- ignored contacts rest a channel ------------------------------------------------------------

#: Push rests for a week after two pushes in a row drew no engagement within a second each.
FATIGUE = """
policy:
  fatigue:
    - {channels: [push], after: 2, pause: 7d, ignored_after: 1s}
rules:
  - {id: tip, version: 1, event: app_click, when: 'event.screen == "tips"',
     channels: [push], template: tip}
"""
IGNORED_AFTER = timedelta(seconds=1)


def _tips_round(
    k: KairosUnderTest, customers: list[str], pushes_before: int
) -> list[dict[str, Any]]:
    """One tips click per customer; the pushes they got (all of them, by trigger)."""
    clicks = [click(customer, screen="tips") for customer in customers]
    for event in clicks:
        k.send(k.topics.app_click, event)
    topic = k.topics.actions(Channel.PUSH)
    records = k.collect([topic], until=lambda r: len(r) >= pushes_before + len(customers))
    triggers = {event["event_id"] for event in clicks}
    return [push for push in _on(records, topic) if push["trigger_event_ids"][0] in triggers]


def test_ignored_pushes_rest_the_channel_and_an_opened_one_ends_the_streak(
    kairos: Callable[..., KairosUnderTest],
) -> None:
    k = kairos(rules_yaml=FATIGUE)
    worker = k.start_worker()
    t = k.topics
    ignores, engages = "C-IGNORES", "C-ENGAGES"
    k.send_profiles(*(profile(c, timezone=daytime_zone()) for c in (ignores, engages)))

    # both get two pushes; only one customer opens one (the first), the rest are delivered
    first = {p["customer_id"]: p for p in _tips_round(k, [ignores, engages], 0)}
    k.send(t.feedback, _report(first[ignores], "delivered"))
    k.send(t.feedback, _report(first[engages], "opened"))
    second = _tips_round(k, [ignores, engages], 2)
    for push in second:
        k.send(t.feedback, _report(push, "delivered"))
    delivered = worker.wait_metric(
        "kairos_feedback_total", 3, channel="push", status="delivered", result="applied"
    )
    opened = worker.metric(
        "kairos_feedback_total", channel="push", status="opened", result="applied"
    )
    assert (delivered, opened) == (3, 1)
    last_sent = max(datetime.fromisoformat(p["created_at"]) for p in second)
    time.sleep(max((last_sent + IGNORED_AFTER - datetime.now(UTC)).total_seconds(), 0) + 0.2)

    # a third tip: the customer who ignored both is rested, the one who opened is not
    clicks = {c: click(c, screen="tips") for c in (ignores, engages)}
    for event in clicks.values():
        k.send(t.app_click, event)
    records = k.collect([t.decisions], until=lambda r: len(r) >= 6)
    third = {
        d["customer_id"]: d
        for d in _on(records, t.decisions)
        if d["trigger_event_ids"] == [clicks[d["customer_id"]]["event_id"]]
    }
    assert (third[ignores]["outcome"], third[ignores]["reason_code"]) == ("suppressed", "fatigue")
    assert "push: last 2 contacts ignored" in third[ignores]["reason"]
    assert (third[engages]["outcome"], third[engages]["channel"]) == ("sent", "push")
    assert worker.metric("kairos_suppressions_total", reason="fatigue", rule_id="tip") == 1
    topic = t.actions(Channel.PUSH)
    pushes = _on(k.collect([topic], until=lambda r: len(r) >= 5), topic)
    assert sorted(p["customer_id"] for p in pushes) == [engages] * 3 + [ignores] * 2
