"""The console's store, fed from a real worker's topics, agrees with ``kairos report``.

A worker runs a deployed ruleset on the embedded broker: a rule with a holdout and a goal,
a two-wave campaign, quiet hours, customers without consent or without a profile. Channel
reports (and one that is not JSON) and goal events follow. The console's follower reads the
topics while this happens, is stopped and its store closed half-way, and resumes from the
store; at the end the store's figures for "all" must be ``kairos report --json``'s, field by
field, and it must have read every record exactly once.
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
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient

from app.cli import main
from app.console.ingest import Follower, console_topics
from app.console.store import ConsoleStore
from app.kafka import RulesTopic, read_to_end
from rules.deployments import compile_files
from schemas.actions import Channel
from schemas.deployment import RulesetBundle
from testkit.factories import click, daytime_zone, drop_off, nighttime_zone, profile
from testkit.rulesets import sms_wave
from tests.integration.conftest import KairosUnderTest

pytestmark = pytest.mark.integration

RULES = """
policy:
  quiet_hours:
    - channels: [sms, push]
      start: "21:00"
      end: "08:00"
      action: defer
rules:
  - id: mortgage-interest
    version: 1
    event: app_click
    when: event.screen == "mortgage_calculator"
    channels: [push, sms]
    template: mortgage_advice
    priority: 40
    holdout: 30
    goal:
      event: app_click
      when: event.screen == "mortgage_application"
      within: 1d
  - id: loan-dropoff-digital-nudge
    version: 1
    event: drop_off
    when: [event.flow == "personal_loan_application", event.step >= 3]
    channels: [push, sms]
    template: loan_application_resume
    priority: 70
    ttl: 1h
"""

SECRET = "integration-secret"
#: What each customer's push service reports on the nudge (None: nothing at all).
_NUDGE_REPORTS = ["opened", "delivered", "failed", None, "clicked", "unsubscribed", "dismissed"]


def _now(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _deploy(k: KairosUnderTest, tmp_path: Path) -> RulesetBundle:
    """Deploy the rules as ``kairos rules deploy`` does: the worker starts on this bundle."""
    folder = tmp_path / "deployed"
    folder.mkdir()
    (folder / "rules.yaml").write_text(textwrap.dedent(RULES) + sms_wave("2s", ttl="1h"))
    files, ruleset = compile_files(folder)
    bundle = RulesetBundle(
        version=ruleset.version,
        files=files,
        deployed_at=datetime.now(UTC),
        deployed_by="test@console",
        comment="the console's agreement test",
    )
    topic = RulesTopic([k.broker.bootstrap], k.topics)
    topic.deploy(bundle, topic.read())
    return bundle


def _consumed(k: KairosUnderTest, event_type: str) -> float:
    return k.workers[0].metric("kairos_events_consumed_total", event_type=event_type)


def _send_events(k: KairosUnderTest, events: list[dict[str, Any]]) -> None:
    """Send events of one type and wait until the worker has consumed them."""
    event_type = events[0]["event_type"]
    before = _consumed(k, event_type)
    for event in events:
        k.producer.send(
            k.topics.for_event_type(event_type),
            key=event["customer_id"].encode(),
            value=json.dumps(event).encode(),
        )
    k.producer.flush()
    deadline = time.monotonic() + 30
    while _consumed(k, event_type) < before + len(events) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _consumed(k, event_type) >= before + len(events), "events not consumed"


def _report(action: dict[str, Any], status: str, number: int = 0) -> dict[str, Any]:
    report = {
        "feedback_id": f"fb-{status}-{number}-{action['action_id']}",
        "action_id": action["action_id"],
        "customer_id": action["customer_id"],
        "channel": action["channel"],
        "status": status,
        "occurred_at": _now(),
    }
    if status == "failed":
        report.update(failure="hard", reason="device token not registered")
    return report


def _send_reports(k: KairosUnderTest, reports: list[dict[str, Any]], garbage: int = 0) -> None:
    """Channel reports (re-sent ones included), plus ``garbage`` records that are not JSON."""
    worker = k.workers[0]

    def seen() -> float:
        return sum(value for _, value in worker.metric_samples("kairos_feedback_total"))

    before = seen()
    for report in reports:
        k.send(k.topics.feedback, report)
    for _ in range(garbage):
        k.send(k.topics.feedback, b"{not json", key="C00")
    unique = len({r["feedback_id"] for r in reports})
    deadline = time.monotonic() + 30
    while seen() < before + unique and time.monotonic() < deadline:
        time.sleep(0.05)


def _kairos_report(
    k: KairosUnderTest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    capsys.readouterr()
    assert main(["report", "--json", "--progress", "off", "--timeout", "60"]) == 0
    rules: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["rules"]
    return rules


def test_the_console_store_agrees_with_kairos_report_and_reads_each_record_once(
    kairos: Callable[..., KairosUnderTest],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    k = kairos(KAIROS_TIMER_GRACE_S="1", KAIROS_TIMER_CHECK_INTERVAL_S="0.2")
    bundle = _deploy(k, tmp_path)
    worker = k.start_worker()
    assert worker.metric("kairos_ruleset_info", version=bundle.version) == 1
    customers = [f"C{n:02d}" for n in range(40)]
    day, night = daytime_zone(), nighttime_zone()
    k.send_profiles(
        *(profile(c, timezone=day, updated_at=_now(-120)) for c in customers[:28]),
        *(profile(c, timezone=night, updated_at=_now(-120)) for c in customers[28:32]),
        *(
            profile(c, timezone=day, updated_at=_now(-120), consent={"sms": False})
            for c in customers[32:36]
        ),
    )  # customers[36:] have no profile at all
    _send_events(k, [click(c, screen="mortgage_calculator") for c in customers])

    # The console starts: it catches up, then follows in the background.
    path = tmp_path / "console" / "console.duckdb"
    group = f"{k.topics.prefix}-console"
    store = ConsoleStore(path, SECRET)
    follower = Follower(store, [k.broker.bootstrap], k.topics, group)
    assert follower.catch_up(60)
    started_with = store.status().records
    assert started_with > 0 and store.status().lag == 0
    follower.start()

    _send_events(k, [drop_off(c, step=4) for c in customers])
    push = k.collect(
        [k.topics.actions(Channel.PUSH)],
        until=lambda got: sum(a["rule_id"] == "loan-dropoff-digital-nudge" for _, a in got) >= 28,
    )
    nudges = [a for _, a in push if a["rule_id"] == "loan-dropoff-digital-nudge"]
    offers = [a for _, a in push if a["rule_id"] == "mortgage-interest"]
    reports = [
        _report(nudge, status)
        for nudge, status in zip(nudges, _NUDGE_REPORTS * 5, strict=False)
        if status is not None
    ]
    reports += [_report(offer, "delivered") for offer in offers]
    reports += [_report(offer, "opened") for offer in offers[::2]]
    reports += [_report(offer, "delivered", number=1) for offer in offers[::2]]  # late: no change
    reports += reports[:5]  # re-sent by the channel: counted once
    _send_reports(k, reports, garbage=1)

    # the background follower keeps up: the reports reach the store
    deadline = time.monotonic() + 30
    while store.status().records < started_with + len(reports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.status().records >= started_with + len(reports)

    # The console restarts half-way: the store keeps its figures and where it stopped.
    follower.stop()
    offsets, records = store.offsets(), store.status().records
    store.close()

    _send_events(k, [click(c, screen="mortgage_application") for c in customers[::3]])
    unopened = sum(
        status not in ("opened", "clicked")
        for _, status in zip(nudges, _NUDGE_REPORTS * 5, strict=False)
    )
    fired = worker.wait_metric(
        "kairos_timers_total", unopened, rule_id="nudge-sms-wave", change="fired"
    )
    assert fired >= unopened
    time.sleep(1)  # the last wave's decision on its way to the topic
    worker.stop()  # the topics hold still from here

    store = ConsoleStore(path, SECRET)
    try:
        assert store.offsets() == offsets and store.status().records == records
        follower = Follower(store, [k.broker.bootstrap], k.topics, group)
        assert follower.catch_up(60)
        follower.stop()
        now = datetime.now(UTC)
        rows = store.campaigns("all", now)
        status = store.status()
        detail = store.campaign("mortgage-interest", now)
        stored_offsets = store.offsets()
        # the customer page's: the first nudged customer's decisions, whole
        nudged = store.customer_decisions(nudges[0]["customer_id"], 50)
    finally:
        store.close()

    expected = _kairos_report(k, monkeypatch, capsys)
    by_rule = {r["rule_id"]: r for r in expected}
    # the report has what the comparison is about
    offer, nudge, wave = (
        by_rule[r] for r in ("mortgage-interest", "loan-dropoff-digital-nudge", "nudge-sms-wave")
    )
    assert offer["held_out"] > 0 and offer["deferred"] > 0 and offer["uplift_ci95"] is not None
    assert offer["treated_conversions"] > 0 and offer["holdout_conversions"] > 0
    assert set(offer["suppressed_by_reason"]) == {"no_consent", "no_profile"}
    assert nudge["engaged"] > 0 and nudge["failed"] > 0 and offer["engaged"] > 0
    assert (wave["campaign"], wave["wave"], wave["sent"]) == (
        "loan-dropoff-digital-nudge",
        2,
        unopened,
    )

    assert [row.model_dump(mode="json", exclude={"trend"}) for row in rows] == expected

    # every record read once: the restart resumed where the store stopped
    on_topics = list(read_to_end([k.broker.bootstrap], console_topics(k.topics), timeout=60))
    assert status.records == len(on_topics)
    assert (status.skipped, status.lag) == (1, 0)
    ends: dict[tuple[str, int], int] = {}
    for record in on_topics:
        ends[(record.topic, record.partition)] = record.offset + 1
    assert stored_offsets == ends
    admin = KafkaAdminClient(bootstrap_servers=k.broker.bootstrap, client_id="console-test")
    try:
        partitions = [TopicPartition(topic, number) for topic, number in ends]
        committed = admin.list_group_offsets({group: partitions})[group]
    finally:
        admin.close()
    assert {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items()} == ends

    # the campaign's page: its contacts in hours, its deployed text
    assert detail is not None
    assert sum(detail.local_hour.values()) == offer["sent"] and detail.local_hour_utc == 0
    assert sum(c.contacts for c in detail.contacts_per_day) == offer["sent"]
    [version] = detail.versions
    assert version.ruleset_versions == [bundle.version]
    assert version.text.startswith("- id: mortgage-interest\n") and "holdout: 30" in version.text

    # a customer's decisions keep their evidence, trigger events and the channel's status
    [nudge_decision] = [d for d in nudged if d.rule_id == "loan-dropoff-digital-nudge"]
    assert nudge_decision.evidence == {"event.flow": "personal_loan_application", "event.step": 4}
    assert len(nudge_decision.trigger_event_ids) == 1 and nudge_decision.reason
    assert (nudge_decision.outcome, nudge_decision.action_status) == ("sent", "opened")
    assert {d.rule_id for d in nudged} >= {"mortgage-interest"}
