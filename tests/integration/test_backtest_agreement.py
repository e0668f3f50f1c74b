"""The backtest and the live worker decide the same, action by action.

A backtest is only worth its report if the worker would have done exactly that. The same
seeded traffic goes through a real worker on the embedded broker and through
``run_backtest``; every decision (id, outcome, reason, channel) and every action (id,
customer, rule, channel, template, parameters, triggering events) must match.

Two things are pinned so that the comparison is of the engines, not of the setups:
* time — the live worker's clock is the wall clock, the backtest's is event time, so each
  event is stamped as it is sent, and customers live where it is daytime now (the quiet
  hours of the example policy would otherwise defer everything to the morning in both);
* order — events of one customer travel on different topics (clicks, transactions,
  drop-offs), and Kafka orders only within a partition of one topic; so events go out in
  waves, each customer's n-th event in wave n, the next wave once the worker has consumed
  the previous one. Within a wave no customer has two events, so any interleaving is the
  backtest's order.

Channel feedback is input too: it ends a campaign's waves or lets them go out, makes a
channel unreachable or withdraws its consent. The last test sends reports on the actions
in waves of their own and replays them where they arrived (feedback lines in the event
file; ``kairos.feedback`` when read back from the topics).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.backtest import Responses, TopicRangeSource, run_backtest
from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.engine import EngineOptions
from schemas.actions import Channel
from schemas.codec import encode_event
from schemas.profile import CustomerProfile
from testkit.factories import click, daytime_zone, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, sms_wave
from tests.integration.conftest import KairosUnderTest

pytestmark = pytest.mark.integration

_EVENTS_PER_CUSTOMER = 20  # waves; bounds the test's length (about half a second a wave)


def _seeded_traffic() -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Profiles, and events grouped in waves (each customer at most once per wave)."""
    config = SyntheticConfig(seed=21, customers=300, days=1.0, activity=3.0)
    zone = daytime_zone()
    profiles: list[dict[str, Any]] = []
    per_customer: dict[str, list[dict[str, Any]]] = {}
    for record in traffic(config):
        if isinstance(record.model, CustomerProfile):
            profile = record.model.model_dump(mode="json")
            profile.update(timezone=zone, updated_at=_now(-120))
            profiles.append(profile)
        else:
            event = json.loads(encode_event(record.model))
            per_customer.setdefault(event["customer_id"], []).append(event)
    waves = [
        [events[n] for events in per_customer.values() if len(events) > n]
        for n in range(_EVENTS_PER_CUSTOMER)
    ]
    return profiles, [wave for wave in waves if wave]


def _now(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _consumed(kairos: KairosUnderTest) -> float:
    samples = kairos.workers[0].metric_samples("kairos_events_consumed_total")
    return sum(value for labels, value in samples if labels.get("event_type") != "profile")


def _send_waves(kairos: KairosUnderTest, waves: list[list[dict[str, Any]]]) -> list[bytes]:
    """Stamp, send and wait for each wave; the exact bytes sent, in order."""
    sent: list[bytes] = []
    before = _consumed(kairos)
    for wave in waves:
        for event in wave:
            event["occurred_at"] = _now()
            raw = json.dumps(event).encode()
            topic = kairos.topics.for_event_type(event["event_type"])
            kairos.producer.send(topic, key=event["customer_id"].encode(), value=raw)
            sent.append(raw)
        kairos.producer.flush()
        deadline = time.monotonic() + 30
        while _consumed(kairos) < before + len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _consumed(kairos) >= before + len(sent), f"wave not consumed: {_consumed(kairos)}"
    return sent


def _decision_view(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["outcome"], d["reason_code"], d.get("channel"), d.get("action_id"))


def _action_view(a: dict[str, Any]) -> tuple[Any, ...]:
    return (
        a["customer_id"],
        a["rule_id"],
        a["rule_version"],
        a["channel"],
        a["template"],
        json.dumps(a["params"], sort_keys=True),
        tuple(a["trigger_event_ids"]),
    )


def _offline(
    rules: Path, tmp_path: Path, options: EngineOptions | None = None
) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    """The backtest of ``tmp_path``'s events and profiles: its decisions and actions, by id.

    Only recorded channel reports: the worker heard those, and no simulated ones.
    """
    run = run_backtest(
        rules,
        [tmp_path / "events.jsonl"],
        profiles=tmp_path / "profiles.jsonl",
        keep_actions=True,
        responses=RECORDED,
        options=options,
    )
    decisions = {
        d.decision_id: _decision_view(d.model_dump(mode="json")) for d in run.base.decisions
    }
    actions = {a.action_id: _action_view(a.model_dump(mode="json")) for a in run.base.actions}
    return decisions, actions


RECORDED = Responses(mode="recorded")


@pytest.fixture(params=["example pack", "immediate rules"])
def rules(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The example pack (waits, holdouts, caps), and rules that contact on most events."""
    if request.param == "example pack":
        return EXAMPLE_RULES
    path = tmp_path / "immediate.yaml"
    path.write_text(textwrap.dedent(IMMEDIATE_RULES))
    return path


def test_backtest_and_live_worker_agree_action_by_action(
    kairos: Callable[..., KairosUnderTest], rules: Path, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    live = kairos(rules_path=rules)
    live.start_worker()
    profiles, waves = _seeded_traffic()
    live.send_profiles(*profiles)
    sent = _send_waves(live, waves)

    (tmp_path / "profiles.jsonl").write_text("\n".join(json.dumps(p) for p in profiles) + "\n")
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(sent) + b"\n")
    offline_decisions, offline_actions = _offline(rules, tmp_path)
    assert len(offline_decisions) >= 20 and len(offline_actions) >= 5, "too little to compare"

    action_topics = [live.topics.actions(channel) for channel in Channel]
    records = live.collect(
        [live.topics.decisions, *action_topics],
        until=lambda got: (
            sum(t == live.topics.decisions for t, _ in got) >= len(offline_decisions)
            and sum(t in action_topics for t, _ in got) >= len(offline_actions)
        ),
        timeout=60,
    )
    live_decisions = {
        r["decision_id"]: _decision_view(r) for t, r in records if t == live.topics.decisions
    }
    live_actions = {r["action_id"]: _action_view(r) for t, r in records if t in action_topics}

    assert live_decisions == offline_decisions
    assert live_actions == offline_actions

    # the same range read back from the input topics (--from-kafka) decides the same
    topic_run = run_backtest(
        rules,
        TopicRangeSource([live.broker.bootstrap], live.topics, since=started, timeout=60),
        keep_actions=True,
        responses=RECORDED,
    )
    assert topic_run.events == len(sent)
    assert {d.decision_id for d in topic_run.base.decisions} == set(offline_decisions)
    assert {a.action_id for a in topic_run.base.actions} == set(offline_actions)
    assert len([r for t, r in records if t in action_topics]) == len(live_actions), "no duplicates"


# -- channel feedback ------------------------------------------------------------------------

#: What each customer's push service reports on the campaign's push (None: nothing at all).
_PUSH_REPORTS = ["opened", "hard bounce", "delivered", None]
_GRACE_S = 1  # the live worker's timer grace, so the unopened pushes' SMS wave comes soon


def _report(action: dict[str, Any], status: str) -> dict[str, Any]:
    report = {
        "feedback_id": f"fb-{status.replace(' ', '-')}-{action['action_id']}",
        "action_id": action["action_id"],
        "customer_id": action["customer_id"],
        "channel": action["channel"],
        "status": "failed" if status == "hard bounce" else status,
        "occurred_at": _now(),
    }
    if status == "hard bounce":
        report.update(failure="hard", reason="device token not registered")
    return report


def _send_reports(kairos: KairosUnderTest, reports: list[dict[str, Any]]) -> list[bytes]:
    """Send channel reports and wait until the worker has applied them; the bytes sent."""
    worker = kairos.workers[0]

    def applied() -> float:
        return sum(v for _, v in worker.metric_samples("kairos_feedback_total", result="applied"))

    before = applied()
    sent = [json.dumps(report).encode() for report in reports]
    for report, raw in zip(reports, sent, strict=True):
        kairos.producer.send(kairos.topics.feedback, key=report["customer_id"].encode(), value=raw)
    kairos.producer.flush()
    deadline = time.monotonic() + 30
    while applied() < before + len(reports) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert applied() >= before + len(reports), "reports not applied"
    return sent


def _actions_of(kairos: KairosUnderTest, channel: Channel, count: int) -> list[dict[str, Any]]:
    topic = kairos.topics.actions(channel)
    records = kairos.collect([topic], until=lambda got: len(got) >= count)
    return [value for _, value in records]


def test_backtest_and_live_worker_agree_when_the_channels_report_back(
    kairos: Callable[..., KairosUnderTest], tmp_path: Path
) -> None:
    """A push, reports on it, the SMS wave (or not), reports on that, then a new contact.

    Per customer, by what their push service reported: opened (no SMS wave), a hard bounce
    (SMS wave; later contacts go by SMS, or nowhere once they unsubscribe from SMS too),
    delivered only, or nothing (SMS wave). The backtest reads the same reports where they
    arrived and must decide the same, action by action.
    """
    started = datetime.now(UTC)
    rules = tmp_path / "waves.yaml"
    rules.write_text(textwrap.dedent(IMMEDIATE_RULES + sms_wave("4s", ttl="1h")))
    live = kairos(
        rules_path=rules,
        KAIROS_TIMER_GRACE_S=str(_GRACE_S),
        KAIROS_TIMER_CHECK_INTERVAL_S="0.2",
    )
    worker = live.start_worker()
    customers = [f"C-FB-{n:02d}" for n in range(8)]
    reporting = dict(zip(customers, _PUSH_REPORTS * 2, strict=True))
    profiles = [profile(c, timezone=daytime_zone(), updated_at=_now(-120)) for c in customers]
    live.send_profiles(*profiles)

    # wave 1: the campaign's pushes; then what the push service says of each
    sent = _send_waves(live, [[drop_off(c, step=4) for c in customers]])
    pushes = _actions_of(live, Channel.PUSH, len(customers))
    sent += _send_reports(
        live,
        [_report(p, status) for p in pushes if (status := reporting[p["customer_id"]])],
    )
    fired = worker.metric("kairos_timers_total", rule_id="nudge-sms-wave", change="fired")
    assert fired == 0, "the test was too slow: the waves were due before the reports came"
    # the SMS wave follows each push not opened within 4 s (+1 s grace), on the wall clock
    unopened = sum(status != "opened" for status in reporting.values())
    assert worker.wait_metric(
        "kairos_timers_total", unopened, rule_id="nudge-sms-wave", change="fired"
    )
    waves_sms = _actions_of(live, Channel.SMS, unopened)
    # one bounced customer unsubscribes from SMS too; a silent one clicks the SMS
    bounced = [c for c, status in reporting.items() if status == "hard bounce"]
    silent = [c for c, status in reporting.items() if status is None]
    sent += _send_reports(
        live,
        [_report(s, "unsubscribed") for s in waves_sms if s["customer_id"] == bounced[0]]
        + [_report(s, "clicked") for s in waves_sms if s["customer_id"] == silent[0]],
    )
    # wave 2: a new contact for everyone, shaped by what the channels said
    sent += _send_waves(live, [[click(c, screen="mortgage_calculator") for c in customers]])

    (tmp_path / "profiles.jsonl").write_text("\n".join(json.dumps(p) for p in profiles) + "\n")
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(sent) + b"\n")
    # this worker's timer grace is 1 s, not the default
    grace = EngineOptions(timer_grace=timedelta(seconds=_GRACE_S))
    offline_decisions, offline_actions = _offline(rules, tmp_path, grace)
    # what the reports must have done, offline: else the comparison proves little
    by_rule_channel = sorted((a[1], a[3]) for a in offline_actions.values())
    assert by_rule_channel.count(("nudge-sms-wave", "sms")) == unopened
    assert by_rule_channel.count(("mortgage-calculator-interest", "sms")) == len(bounced) - 1
    assert sorted(v[:2] for v in offline_decisions.values() if v[0] == "suppressed") == [
        ("suppressed", "no_consent")
    ]

    action_topics = [live.topics.actions(channel) for channel in Channel]
    records = live.collect(
        [live.topics.decisions, *action_topics],
        until=lambda got: (
            sum(t == live.topics.decisions for t, _ in got) >= len(offline_decisions)
            and sum(t in action_topics for t, _ in got) >= len(offline_actions)
        ),
    )
    live_decisions = {
        r["decision_id"]: _decision_view(r) for t, r in records if t == live.topics.decisions
    }
    live_actions = {r["action_id"]: _action_view(r) for t, r in records if t in action_topics}
    assert live_decisions == offline_decisions
    assert live_actions == offline_actions
    assert len([r for t, r in records if t in action_topics]) == len(live_actions), "no duplicates"

    # read back from the topics (--from-kafka), the reports from kairos.feedback
    topic_run = run_backtest(
        rules,
        TopicRangeSource([live.broker.bootstrap], live.topics, since=started, timeout=30),
        keep_actions=True,
        responses=RECORDED,
        options=grace,
    )
    assert topic_run.base.report().inputs.feedback == len(sent) - 2 * len(customers)
    assert {d.decision_id for d in topic_run.base.decisions} == set(offline_decisions)
    assert {a.action_id for a in topic_run.base.actions} == set(offline_actions)
