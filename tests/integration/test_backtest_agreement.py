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

from app.backtest import TopicRangeSource, run_backtest
from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from schemas.actions import Channel
from schemas.codec import encode_event
from schemas.profile import CustomerProfile
from testkit.factories import daytime_zone
from testkit.rulesets import IMMEDIATE_RULES
from tests.integration.conftest import KairosUnderTest

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
    for wave in waves:
        for event in wave:
            event["occurred_at"] = _now()
            raw = json.dumps(event).encode()
            topic = kairos.topics.for_event_type(event["event_type"])
            kairos.producer.send(topic, key=event["customer_id"].encode(), value=raw)
            sent.append(raw)
        kairos.producer.flush()
        deadline = time.monotonic() + 30
        while _consumed(kairos) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _consumed(kairos) >= len(sent), f"wave not consumed: {_consumed(kairos)}"
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
    run = run_backtest(
        rules,
        [tmp_path / "events.jsonl"],
        profiles=tmp_path / "profiles.jsonl",
        keep_actions=True,
    )
    offline_decisions = {
        d.decision_id: _decision_view(d.model_dump(mode="json")) for d in run.base.decisions
    }
    offline_actions = {
        a.action_id: _action_view(a.model_dump(mode="json")) for a in run.base.actions
    }
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
    )
    assert topic_run.events == len(sent)
    assert {d.decision_id for d in topic_run.base.decisions} == set(offline_decisions)
    assert {a.action_id for a in topic_run.base.actions} == set(offline_actions)
    assert len([r for t, r in records if t in action_topics]) == len(live_actions), "no duplicates"
