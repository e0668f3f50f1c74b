"""The console's store counts what ``kairos report`` counts, per window, and keeps no customer id.

Records are built with ``testkit.factories`` as the workers and channels write them, and the
expected figures come from ``rules.offline.report.build_report`` over the same records.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.console import store as store_module
from app.console.model import WINDOWS, CampaignRow, Window
from app.console.store import (
    SCHEMA_VERSION,
    TREND_DAYS,
    Batch,
    ConsoleStore,
    ConsoleStoreError,
    rule_texts,
    window_start,
)
from app.settings import EXAMPLE_RULES
from rules.offline.report import build_report
from schemas.conversions import Conversion
from schemas.decisions import Decision
from schemas.deployment import RulesetBundle
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from testkit import factories as make

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
SECRET = "test-secret"


def _at(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


def _decision(customer: str, rule: str, outcome: str = "sent", **fields: Any) -> Decision:
    return Decision.model_validate(make.decision(customer, rule, outcome, **fields))


def _feedback(made: Decision, status: str, **fields: Any) -> Feedback:
    return Feedback.model_validate(make.feedback(made.model_dump(mode="json"), status, **fields))


def _conversion(made: Decision, **fields: Any) -> Conversion:
    return Conversion.model_validate(make.conversion(made.model_dump(mode="json"), **fields))


def _profile(customer: str, zone: str, updated: timedelta = timedelta(days=60)) -> CustomerProfile:
    return CustomerProfile.model_validate(
        make.profile(customer, timezone=zone, updated_at=_at(updated))
    )


def _figures(rows: list[CampaignRow]) -> list[dict[str, Any]]:
    """A row as ``build_report`` has it: every field but the trend, which it has not."""
    return [row.model_dump(exclude={"trend"}) for row in rows]


@pytest.fixture
def store(tmp_path: Path) -> ConsoleStore:
    opened = ConsoleStore(tmp_path / "console.duckdb", SECRET)
    yield opened  # type: ignore[misc]
    opened.close()


# -- the figures: kairos report's, per window ---------------------------------------------------

_RM_STATUSES = ["reached", "not_reached", "interested", "declined", "opened", "dismissed"]
_DIGITAL = ["delivered", "opened", "clicked", "dismissed", "failed", "unsubscribed", "replied"]


def _history(seed: int) -> tuple[list[Decision], list[Conversion], list[Feedback]]:
    """Forty days of decisions of four rules (one a campaign's second wave), the channels'
    reports on the contacts (several per action, equal ranks included) and conversions;
    then re-deliveries of a sample of each, as a worker failover would cause."""
    rng = random.Random(seed)
    decisions, conversions, feedback = [], [], []
    for n in range(1500):
        rule = rng.choice(["salary-hello", "mortgage", "nudge", "nudge-sms-wave"])
        outcome = rng.choice(["sent"] * 5 + ["held_out", "deferred", "suppressed", "suppressed"])
        fields: dict[str, Any] = {"decided_at": _at(timedelta(minutes=rng.randint(0, 40 * 1440)))}
        if rule.startswith("nudge"):
            fields.update(campaign="nudge", wave=2 if rule == "nudge-sms-wave" else 1)
        if outcome == "suppressed":
            fields["reason_code"] = rng.choice(["no_consent", "cooldown", "frequency_cap"])
        if outcome == "sent":
            fields["channel"] = rng.choice(["sms", "push", "rm"])
        made = _decision(f"C{n % 400}", rule, outcome, **fields)
        decisions.append(made)
        if outcome in ("sent", "held_out") and rng.random() < 0.3:
            conversions.append(_conversion(made))
        if outcome == "sent":
            statuses = _RM_STATUSES if made.channel == "rm" else _DIGITAL
            for number, status in enumerate(rng.sample(statuses, rng.randint(0, 3))):
                feedback.append(_feedback(made, status, feedback_id=f"fb-{n}-{number}"))
    orphan = _decision("C-gone", "mortgage", "sent")  # its decision left the topic long ago
    conversions.append(_conversion(orphan))
    # re-deliveries: the same ids again (and a second conversion of one decision)
    conversions.append(_conversion(decisions[0], conversion_id="cnv-second", event_id="e2"))
    return (
        decisions + rng.sample(decisions, 150),
        conversions + rng.sample(conversions, 40),
        feedback + rng.sample(feedback, 80),
    )


def _write_in_batches(store: ConsoleStore, seed: int, batches: int = 7) -> tuple[Any, ...]:
    """Consecutive slices, as a follower reads a topic: the store sees the list's order."""
    decisions, conversions, feedback = _history(seed)

    def part(records: list[Any], index: int) -> list[Any]:
        size = -(-len(records) // batches)
        return records[index * size : (index + 1) * size]

    for index in range(batches):
        store.write(
            Batch(
                decisions=part(decisions, index),
                conversions=part(conversions, index),
                feedback=part(feedback, index),
                offsets={("kairos.decisions", 0): index + 1},
            )
        )
    return decisions, conversions, feedback


def _expected(
    window: Window, decisions: list[Decision], conversions: list[Conversion], feedback: Any
) -> list[dict[str, Any]]:
    """build_report over the window's decisions and the conversions crediting them."""
    since = window_start(window, NOW)
    if since is None:
        return [asdict(r) for r in build_report(decisions, conversions, feedback)]
    chosen = [d for d in decisions if d.decided_at >= since]
    ids = {d.decision_id for d in chosen}
    credited = [c for c in conversions if c.decision_id in ids]
    return [asdict(r) for r in build_report(chosen, credited, feedback)]


@pytest.mark.parametrize("seed", [1, 2])
def test_every_window_has_the_figures_kairos_report_gives_for_it(
    store: ConsoleStore, seed: int
) -> None:
    decisions, conversions, feedback = _write_in_batches(store, seed)
    for window in WINDOWS:
        expected = _expected(window, decisions, conversions, feedback)
        assert _figures(store.campaigns(window, NOW)) == expected, window
    everything = {row.rule_id: row for row in store.campaigns("all", NOW)}
    assert everything["nudge-sms-wave"].campaign == "nudge"
    assert everything["nudge-sms-wave"].wave == 2
    assert everything["mortgage"].uplift_ci95 is not None
    assert set(everything["mortgage"].sent_by_channel) == {"push", "rm", "sms"}


def test_today_starts_at_midnight_utc_and_the_trend_is_sent_per_utc_day(
    store: ConsoleStore,
) -> None:
    just_after_midnight = _decision("C1", "r", decided_at="2026-03-10T00:30:00+00:00")
    # 23:30 UTC the day before, though 00:30 on the 10th in Madrid: yesterday
    before_midnight = _decision("C2", "r", decided_at="2026-03-10T00:30:00+01:00")
    six_days = _decision("C3", "r", decided_at=_at(timedelta(days=6, hours=23)))
    eight_days = _decision("C4", "r", decided_at=_at(timedelta(days=8)))
    twenty_nine = _decision("C5", "r", decided_at=_at(timedelta(days=29)))
    old = _decision("C6", "r", decided_at=_at(timedelta(days=31)))
    held = _decision("C7", "r", "held_out", decided_at=_at(timedelta(hours=1)))
    store.write(
        Batch(
            decisions=[
                *(just_after_midnight, before_midnight, six_days, eight_days, twenty_nine),
                *(old, held),
            ]
        )
    )
    sent = {w: store.campaigns(w, NOW)[0].sent for w in WINDOWS}
    assert sent == {"today": 1, "7d": 3, "30d": 5, "all": 6}
    assert store.campaigns("today", NOW)[0].held_out == 1
    trend = store.campaigns("today", NOW)[0].trend
    assert len(trend) == TREND_DAYS
    # oldest first; held-out decisions are no contact
    assert trend[-1] == 1 and trend[-2] == 1 and trend[-7] == 0 and trend[-8] == 1
    assert sum(trend) == 4  # the 29- and 31-day-old contacts are out of its 14 days
    assert window_start("today", NOW) == datetime(2026, 3, 10, tzinfo=UTC)


def test_a_conversion_counts_in_the_window_of_the_decision_it_credits(
    store: ConsoleStore,
) -> None:
    old = _decision("C1", "r", decided_at=_at(timedelta(days=3)))
    new = _decision("C2", "r", decided_at=_at(timedelta(hours=2)))
    orphan = _decision("C3", "r", decided_at=_at(timedelta(hours=1)))  # never stored
    store.write(
        Batch(
            decisions=[old, new],
            conversions=[
                _conversion(old, converted_at=_at(timedelta(hours=1))),
                *(_conversion(new), _conversion(orphan)),
            ],
        )
    )
    conversions = {w: store.campaigns(w, NOW)[0].treated_conversions for w in WINDOWS}
    assert conversions == {"today": 1, "7d": 2, "30d": 2, "all": 3}


def test_a_record_delivered_twice_counts_once_even_across_batches(store: ConsoleStore) -> None:
    sent = _decision("C1", "r", decision_id="dec-1")
    held = _decision("C2", "r", "held_out", decision_id="dec-2")
    opened = _feedback(sent, "opened")
    store.write(Batch(decisions=[sent, sent, held], feedback=[opened], conversions=[]))
    store.write(
        Batch(
            decisions=[sent, held],
            feedback=[opened, opened],
            # two conversion records of one decision: one conversion, as build_report counts
            conversions=[
                *(_conversion(sent), _conversion(sent, conversion_id="other")),
                *(_conversion(held), _conversion(held)),
            ],
        )
    )
    [row] = store.campaigns("all", NOW)
    assert (row.fired, row.sent, row.held_out, row.engaged) == (2, 1, 1, 1)
    assert (row.treated_conversions, row.holdout_conversions) == (1, 1)


def test_the_funnel_follows_each_action_to_its_furthest_status(store: ConsoleStore) -> None:
    made = [_decision(f"C{n}", "r", channel="rm" if n >= 4 else "sms") for n in range(7)]
    reports = [
        # opened, then a late "delivered": still opened (engaged, delivered)
        [_feedback(made[0], "delivered"), _feedback(made[0], "opened")],
        [_feedback(made[1], "delivered", feedback_id="late")],
        [_feedback(made[2], "failed")],  # failed: neither delivered nor engaged
        [_feedback(made[3], "delivered"), _feedback(made[3], "unsubscribed")],  # neither
        # two statuses of one rank: the first reported stands, as in build_report
        [_feedback(made[4], "opened"), _feedback(made[4], "declined")],
        [_feedback(made[5], "declined"), _feedback(made[5], "opened")],
        [],  # nothing reported: sent only
    ]
    first, second = Batch(decisions=made), Batch()
    for number, on_one in enumerate(reports):
        for index, report in enumerate(on_one):
            (first if index == 0 else second).feedback.append(report)
        if number == 0:
            second.feedback.append(_feedback(made[1], "delivered", feedback_id="late"))
    store.write(first)
    store.write(second)
    all_feedback = first.feedback + second.feedback
    [expected] = build_report(made, [], all_feedback)
    [row] = store.campaigns("all", NOW)
    assert (row.sent, row.delivered, row.engaged, row.failed) == (7, 4, 2, 1)
    assert _figures([row]) == [asdict(expected)]


# -- restart, transactions, secret ----------------------------------------------------------------


def test_a_reopened_store_has_the_same_figures_and_offsets(tmp_path: Path) -> None:
    path = tmp_path / "console.duckdb"
    with ConsoleStore(path, SECRET) as first:
        _write_in_batches(first, seed=3)
        first.write(Batch(offsets={("kairos.feedback", 2): 41}, records=5, skipped=2))
        before = [first.campaigns(w, NOW) for w in WINDOWS]
        offsets, status = first.offsets(), first.status()
    with ConsoleStore(path, SECRET) as again:
        assert [again.campaigns(w, NOW) for w in WINDOWS] == before
        assert (
            again.offsets() == offsets == {("kairos.decisions", 0): 7, ("kairos.feedback", 2): 41}
        )
        assert again.status() == status
        assert (status.records, status.skipped) == (5, 2)


def test_a_batch_that_fails_leaves_neither_its_records_nor_its_offsets(
    store: ConsoleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(Batch(decisions=[_decision("C1", "r")], offsets={("t", 0): 1}, records=1))
    before = store.campaigns("all", NOW), store.status()

    def broken(files: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_module, "rule_texts", broken)  # the batch's last part fails
    bundle = RulesetBundle(
        version="rs-1", files={"a.yaml": "rules: []\n"}, deployed_at=NOW, deployed_by="ops"
    )
    failing = Batch(
        decisions=[_decision("C2", "r"), _decision("C3", "other")],
        bundles=[("rs-1", bundle)],
        offsets={("t", 0): 3},
        records=3,
    )
    with pytest.raises(RuntimeError, match="disk full"):
        store.write(failing)
    assert (store.campaigns("all", NOW), store.status()) == before
    assert store.offsets() == {("t", 0): 1}


def test_a_store_opened_with_another_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "console.duckdb"
    ConsoleStore(path, SECRET).close()
    with pytest.raises(ConsoleStoreError, match="another customer-id secret"):
        ConsoleStore(path, "another")
    with pytest.raises(ConsoleStoreError, match="non-empty secret"):
        ConsoleStore(tmp_path / "other.duckdb", b"")
    ConsoleStore(path, SECRET.encode()).close()  # the same secret, as bytes


def test_a_store_of_an_older_layout_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "console.duckdb"
    ConsoleStore(path, SECRET).close()
    with duckdb.connect(str(path)) as db:  # the layout before decision details
        db.execute("DROP TABLE decision_details")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(
        ConsoleStoreError, match=f"has layout 1, this Kairos writes layout {SCHEMA_VERSION}"
    ):
        ConsoleStore(path, SECRET)
    with duckdb.connect(str(path), read_only=True) as db:
        tables = {
            name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    assert "decision_details" not in tables and "decisions" in tables


# -- privacy ----------------------------------------------------------------------------------


def _text_values(path: Path) -> list[str]:
    """Every text value of every table of the store file."""
    values: list[str] = []
    with duckdb.connect(str(path), read_only=True) as db:
        columns = db.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE data_type = 'VARCHAR' AND NOT internal"
        ).fetchall()
        for table, column in columns:
            rows = db.execute(f'SELECT "{column}" FROM "{table}"').fetchall()
            values += [value for (value,) in rows if value is not None]
    return values


def test_no_customer_id_reaches_the_store_file(tmp_path: Path) -> None:
    path = tmp_path / "console.duckdb"
    customers = [f"CUST-PRIVATE-{n:04d}" for n in range(300)]
    made = [
        # ids that embed the customer id, as any producer's ids might, and a rule that read
        # it (and wrote it in its reason): the customer page's details must not keep it either
        _decision(
            c,
            "rule-in-the-file",
            decision_id=f"dec-{c}",
            action_id=f"act-{c}",
            trigger_event_ids=[f"evt-{c}-1", "evt-plain-2"],
            reason=f"matched {c} on merchant-in-the-file",
            evidence={
                "event.customer_id": c,
                "event.merchant": "merchant-in-the-file",
                "event.amount": 1234.5,
                "event.tags": [c, "vip"],
                "event.by_customer": {c: 1},
            },
        )
        for c in customers
    ]
    batch = Batch(
        decisions=made,
        feedback=[_feedback(d, "opened", feedback_id=f"fb-{d.customer_id}") for d in made],
        conversions=[_conversion(d, conversion_id=f"cnv-{d.customer_id}") for d in made],
        profiles=[(c, _profile(c, "Asia/Tokyo")) for c in customers],
    )
    store = ConsoleStore(path, SECRET)
    store.write(batch)
    wal = path.with_name(path.name + ".wal")
    in_flight = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    key = store.key(customers[0])
    store.close()
    on_disk = path.read_bytes()
    values = _text_values(path)

    assert b"CUST-PRIVATE" not in in_flight and b"CUST-PRIVATE" not in on_disk
    assert not [v for v in values if "CUST-PRIVATE" in v]
    # what is there is findable, so the absence above means something
    assert "rule-in-the-file" in values and key in values
    assert key.encode() in in_flight + on_disk
    assert [v for v in values if "merchant-in-the-file" in v and "event.merchant" in v]
    with ConsoleStore(path, SECRET) as reopened:
        [row] = reopened.campaigns("all", NOW)
        assert (row.sent, row.engaged, row.treated_conversions) == (300, 300, 300)
        [kept] = reopened.customer_decisions(customers[0], 10)
    # what the customer page reads: the details, the customer's id replaced
    assert kept.reason == "matched [customer] on merchant-in-the-file"
    assert kept.trigger_event_ids == ["evt-[customer]-1", "evt-plain-2"]
    assert kept.evidence == {
        "event.customer_id": "[customer]",
        "event.merchant": "merchant-in-the-file",
        "event.amount": 1234.5,
        "event.tags": ["[customer]", "vip"],
        "event.by_customer": {"[customer]": 1},
    }
    assert kept.action_status == "opened"


# -- one customer's decisions (the customer page) ------------------------------------------


def test_a_customers_decisions_have_their_reason_evidence_events_and_channel_status(
    store: ConsoleStore,
) -> None:
    sent = _decision(
        "C1",
        "loan-nudge",
        channel="push",
        decided_at=_at(timedelta(hours=3)),
        reason="push chosen: consent and the app installed",
        evidence={"event.flow": "personal_loan", "event.step": 3, "customer.segment": None},
        trigger_event_ids=["evt-drop-1"],
        campaign="loan",
        wave=1,
    )
    suppressed = _decision(
        "C1",
        "offer",
        "suppressed",
        reason_code="no_consent",
        reason="no consent on push or sms",
        decided_at=_at(timedelta(hours=1)),
        evidence={"event.screen": "offer"},
        trigger_event_ids=["evt-click-7", "evt-click-8"],
    )
    deferred = _decision(
        "C1",
        "offer",
        "deferred",
        decided_at=_at(timedelta(hours=2)),
        deferred_until=_at(timedelta(hours=-6)),
    )
    someone_else = _decision(
        "C2",
        "offer",
        "suppressed",
        evidence={"event.screen": "not-C1s"},
        decided_at=_at(timedelta(0)),
    )
    store.write(Batch(decisions=[sent, suppressed, someone_else]))
    # the channel's reports arrive later, a late "delivered" after "opened"
    reports = [_feedback(sent, s, feedback_id=f"fb-{s}") for s in ("delivered", "opened")]
    late = _feedback(sent, "delivered", feedback_id="fb-late")
    store.write(Batch(decisions=[deferred], feedback=[*reports, late]))

    mine = store.customer_decisions("C1", 10)
    assert [d.decision_key for d in mine] == [
        store.key(d.decision_id) for d in (suppressed, deferred, sent)
    ], "newest first, only C1's"
    no_consent, waiting, contact = mine
    assert (no_consent.rule_id, no_consent.outcome, no_consent.reason_code) == (
        "offer",
        "suppressed",
        "no_consent",
    )
    assert no_consent.reason == "no consent on push or sms"
    assert no_consent.evidence == {"event.screen": "offer"}
    assert no_consent.trigger_event_ids == ["evt-click-7", "evt-click-8"]
    assert no_consent.action_key is None and no_consent.action_status is None
    assert no_consent.decided_at == NOW - timedelta(hours=1)
    assert waiting.deferred_until == NOW + timedelta(hours=6)
    assert contact.evidence == {
        "event.flow": "personal_loan",
        "event.step": 3,
        "customer.segment": None,
    }
    assert (contact.channel, contact.action_key) == ("push", store.key(str(sent.action_id)))
    assert contact.action_status == "opened", "the furthest status, as the funnel counts it"
    assert contact.action_status_at == reports[1].occurred_at
    assert (contact.campaign, contact.wave, contact.rule_version) == ("loan", 1, 1)
    assert [d.evidence for d in store.customer_decisions("C2", 10)] == [{"event.screen": "not-C1s"}]
    assert store.customer_decisions("C1", 1) == mine[:1]
    assert store.customer_decisions("C-unknown", 10) == []


def test_only_each_customers_latest_decisions_keep_their_details(tmp_path: Path) -> None:
    with ConsoleStore(tmp_path / "console.duckdb", SECRET, decisions_per_customer=3) as store:
        hours = [5, 1, 7, 3, 2, 6]  # arriving out of order, as partitions interleave
        made = [
            _decision("C1", "r", decided_at=_at(timedelta(hours=h)), evidence={"hours_ago": h})
            for h in hours
        ]
        other = [_decision("C2", "r", decided_at=_at(timedelta(hours=h))) for h in (9, 8)]
        store.write(Batch(decisions=made[:3] + other))
        store.write(Batch(decisions=made[3:]))
        store.write(Batch(decisions=[made[2]]))  # an old one delivered again
        latest = [d.evidence["hours_ago"] for d in store.customer_decisions("C1", 10)]
        assert latest == [1, 2, 3]
        assert len(store.customer_decisions("C2", 10)) == 2
        # the bound is the details' only: every decision still counts
        [row] = store.campaigns("all", NOW)
        assert row.sent == 8
    with pytest.raises(ConsoleStoreError, match="at least one"):
        ConsoleStore(tmp_path / "other.duckdb", SECRET, decisions_per_customer=0)


def test_a_profile_tombstone_deletes_the_customers_decision_details(store: ConsoleStore) -> None:
    erased = [_decision("C-erased", "r", evidence={"event.amount": 900}) for _ in range(3)]
    kept = _decision("C-kept", "r", evidence={"event.amount": 12})
    store.write(Batch(decisions=[*erased[:2], kept]))
    # the tombstone's batch deletes what it brings of the customer too
    store.write(Batch(decisions=[erased[2]], profiles=[("C-erased", None)]))
    assert store.customer_decisions("C-erased", 10) == []
    assert [d.evidence for d in store.customer_decisions("C-kept", 10)] == [{"event.amount": 12}]
    [row] = store.campaigns("all", NOW)
    assert row.sent == 4, "the campaigns' counts keep the decisions (pseudonymised)"
    later = _decision("C-erased", "r", evidence={"event.amount": 5})  # a new customer since
    store.write(Batch(decisions=[later]))
    assert [d.evidence for d in store.customer_decisions("C-erased", 10)] == [{"event.amount": 5}]


# -- one campaign's page ----------------------------------------------------------------------

_BUNDLE_FILE = """\
# the bank's rules
rules:
  - id: mortgage
    version: {version}
    event: app_click
    when: event.screen == "mortgage_calculator"   # the calculator only
    channels: [push]
    template: mortgage_advice

  # the other rule
  - id: salary-hello
    version: 1
    event: transaction
    channels: [sms]
    template: hello
policy:
  caps: []
"""


def _bundle(ruleset: str, version: int, deployed: timedelta) -> RulesetBundle:
    return RulesetBundle(
        version=ruleset,
        files={"rules.yaml": _BUNDLE_FILE.format(version=version)},
        deployed_at=NOW - deployed,
        deployed_by="jane@ops",
    )


def test_a_campaign_page_has_days_local_hours_and_versions(store: ConsoleStore) -> None:
    at_2300_utc = "2026-03-09T23:10:00+00:00"
    contacts = [
        _decision("C-tokyo", "mortgage", decided_at=at_2300_utc),  # 08:10 in Tokyo
        # 19:10 in New York, on summer time since the 8th
        _decision("C-ny", "mortgage", decided_at=at_2300_utc, channel="push"),
        _decision("C-erased", "mortgage", decided_at=at_2300_utc),  # erased: 23:10 UTC
        _decision("C-unknown", "mortgage", decided_at=_at(timedelta(days=3))),  # 10:00 UTC
        _decision("C-held", "mortgage", "held_out", decided_at=at_2300_utc),  # no contact
    ]
    store.write(
        Batch(
            decisions=contacts,
            profiles=[
                ("C-tokyo", _profile("C-tokyo", "Asia/Tokyo")),
                ("C-ny", _profile("C-ny", "Europe/Madrid", updated=timedelta(days=50))),
                ("C-erased", _profile("C-erased", "Asia/Tokyo")),
            ],
            bundles=[
                ("rs-a", _bundle("rs-a", 1, timedelta(days=20))),
                ("rs-b", _bundle("rs-b", 1, timedelta(days=10))),
                ("rs-gone", _bundle("rs-gone", 3, timedelta(days=1))),
            ],
        )
    )
    store.write(
        Batch(
            profiles=[
                ("C-ny", _profile("C-ny", "America/New_York", updated=timedelta(days=40))),
                ("C-ny", _profile("C-ny", "Asia/Tokyo", updated=timedelta(days=55))),  # older
                ("C-erased", None),  # a tombstone: the customer's profile was erased
            ],
            bundles=[("rs-c", _bundle("rs-c", 2, timedelta(days=2))), ("rs-gone", None)],
        )
    )
    detail = store.campaign("mortgage", NOW, days=5)
    assert detail is not None
    assert detail.row.sent == 4 and detail.row.held_out == 1
    assert {h: n for h, n in detail.local_hour.items() if n} == {8: 1, 19: 1, 23: 1, 10: 1}
    assert len(detail.local_hour) == 24 and detail.local_hour_utc == 2
    days = [(c.day, c.channel, c.contacts) for c in detail.contacts_per_day]
    assert days == [
        (date(2026, 3, 7), "push", 0),
        (date(2026, 3, 7), "sms", 1),
        (date(2026, 3, 8), "push", 0),
        (date(2026, 3, 8), "sms", 0),
        (date(2026, 3, 9), "push", 1),
        (date(2026, 3, 9), "sms", 2),
        (date(2026, 3, 10), "push", 0),
        (date(2026, 3, 10), "sms", 0),
    ]
    assert [(v.rule_version, v.ruleset_versions) for v in detail.versions] == [
        (2, ["rs-c"]),
        (1, ["rs-a", "rs-b"]),
    ]
    v1 = detail.versions[1]
    assert v1.first_deployed_at == NOW - timedelta(days=20)
    assert v1.text.startswith("- id: mortgage\n  version: 1\n")
    assert "# the calculator only" in v1.text and v1.text.endswith("template: mortgage_advice")
    assert "salary-hello" not in v1.text and "other rule" not in v1.text

    hello = store.campaign("salary-hello", NOW)  # deployed, never decided
    assert hello is not None and hello.row.fired == 0 and len(hello.row.trend) == TREND_DAYS
    assert hello.versions[0].text.endswith("template: hello")  # not the policy after it
    assert store.campaign("never-heard-of", NOW) is None


def test_the_status_says_how_far_the_store_has_read(store: ConsoleStore) -> None:
    empty = store.status()
    assert (empty.records, empty.last_record_at, empty.lag, empty.updated_at) == (
        0,
        None,
        None,
        None,
    )
    store.write(
        Batch(
            decisions=[
                _decision("C1", "r", decided_at=_at(timedelta(hours=5))),
                _decision("C2", "r", decided_at=_at(timedelta(hours=1))),
            ],
            records=4,
            skipped=2,
        )
    )
    store.set_lag(12)
    status = store.status()
    assert (status.records, status.skipped, status.lag) == (4, 2, 12)
    assert status.last_record_at == NOW - timedelta(hours=1)
    assert status.updated_at is not None


def test_rule_texts_are_each_example_rule_as_written() -> None:
    from ruamel.yaml import YAML

    files = {p.name: p.read_text() for p in EXAMPLE_RULES.glob("*.yaml")}
    texts = rule_texts(files)
    assert len(texts) >= 8
    for rule_id, (version, text) in texts.items():
        [rule] = YAML(typ="safe").load(text)
        assert (rule["id"], rule["version"]) == (rule_id, version)
        assert text.startswith("- id: ") and not text.endswith("\n")
