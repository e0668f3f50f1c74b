"""``kairos backtest``: the report adds up, hours are the customer's, files are usable."""

from __future__ import annotations

import csv
import io
import json
import shutil
import textwrap
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.backtest import BacktestInputError, Responses, run_backtest
from app.cli import main
from app.settings import EXAMPLE_RULES
from rules.errors import RuleFileError
from rules.offline.backtest import BacktestReport
from rules.offline.compare import BacktestDiff, compare
from testkit.factories import drop_off, profile


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeded days of 300 customers, written by ``kairos generate --out``."""
    out = tmp_path_factory.mktemp("generated")
    assert main(["generate", "--out", str(out), "--customers", "300", "--days", "3"]) == 0
    return out


def _inputs(month: Path) -> dict[str, object]:
    return {"events": [month / "events.jsonl"], "profiles": month / "profiles.jsonl"}


def test_every_count_adds_up_to_the_actions_the_engine_emitted(month: Path) -> None:
    run = run_backtest(EXAMPLE_RULES, keep_actions=True, **_inputs(month))  # type: ignore[arg-type]
    report = run.base.report()
    actions = run.base.actions
    assert report.inputs.events == run.events > 10_000
    assert len(actions) == sum(report.contacts_by_channel.values()) > 50
    assert report.customers_reached == len({a.customer_id for a in actions})
    for rule in report.rules:
        mine = [a for a in actions if a.rule_id == rule.rule_id]
        assert rule.fires == rule.sends + rule.held_out + rule.suppressed
        assert rule.sends == len(mine)
        assert rule.customers_reached == len({a.customer_id for a in mine})
        for channel in rule.channels:
            assert sum(channel.per_day.values()) == sum(channel.per_hour) == channel.sends
    daily_total = sum(sum(day.values()) for day in report.contacts_per_day.values())
    assert daily_total == len(actions)


RULE_WITH_QUIET_HOURS = """
policy:
  quiet_hours:
    - {channels: [push, sms], start: "21:00", end: "08:00", action: defer}
rules:
  - id: loan-nudge
    version: 3
    event: drop_off
    when: event.step >= 3
    channels: [push]
    template: loan_application_resume
    priority: 50
    ttl: 24h
"""


def _jsonl(path: Path, *records: dict[str, object] | bytes) -> Path:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_late_evening_contact_is_deferred_to_the_customers_morning(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULE_WITH_QUIET_HOURS))
    profiles = _jsonl(
        tmp_path / "profiles.jsonl",
        profile("C1", timezone="Asia/Tokyo", updated_at="2026-11-01T00:00:00Z"),
        profile("C2", timezone="Asia/Tokyo", updated_at="2026-11-01T00:00:00Z"),
    )
    events = _jsonl(
        tmp_path / "events.jsonl",
        # 23:30 in Tokyo: quiet hours, deferred to 08:00 there (23:00 UTC)
        drop_off("C1", step=4, occurred_at="2026-11-02T14:30:00Z"),
        # the clock moves past the morning: the deferred contact goes out
        drop_off("C2", step=1, occurred_at="2026-11-03T05:00:00Z"),
    )
    report = run_backtest(rules, [events], profiles=profiles).base.report()
    (rule,) = report.rules
    assert (rule.rule_id, rule.rule_version, rule.deferred, rule.sends) == ("loan-nudge", 3, 1, 1)
    (push,) = rule.channels
    assert push.per_day == {"2026-11-03": 1}, "the customer's date, not UTC's (2026-11-02)"
    assert push.peak_hour == 8
    assert report.pending_at_end == {}


def test_lines_the_worker_would_dead_letter_are_counted_by_reason(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULE_WITH_QUIET_HOURS))
    events = _jsonl(
        tmp_path / "events.jsonl",
        b'{"event_id": "broken',
        {**drop_off("C1"), "event_type": "telepathy"},
        drop_off("C1", step=4),
    )
    report = run_backtest(rules, [events]).base.report()
    assert report.inputs.rejected == {"malformed_json": 1, "unknown_event_type": 1}
    assert report.inputs.events == 1, "valid events; the rejected ones are counted apart"
    assert report.rules[0].fires == 1, "the good line still counts (suppressed: no profile)"


def test_a_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BacktestInputError, match="no such input file"):
        run_backtest(EXAMPLE_RULES, [tmp_path / "nope.jsonl"])


def test_compare_shows_what_removing_a_rule_takes_away(month: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(EXAMPLE_RULES, other, ignore=shutil.ignore_patterns("tests"))
    (other / "salary_wealth.yaml").unlink()
    run = run_backtest(EXAMPLE_RULES, compare=other, **_inputs(month))  # type: ignore[arg-type]
    assert run.other is not None
    diff = compare(run.base, run.other)
    removed = next(r for r in diff.rules if r.rule_id == "salary-wealth-offer")
    base_rule = next(r for r in diff.base.rules if r.rule_id == "salary-wealth-offer")
    assert removed.change == "removed" and removed.version_after is None
    assert removed.sends_before == base_rule.sends > 0 and removed.sends_after == 0
    assert removed.customers_lost == base_rule.customers_reached
    assert removed.customers_gained == 0
    for channel, delta in diff.contacts_by_channel_delta.items():
        after = diff.other.contacts_by_channel.get(channel, 0)
        assert delta == after - diff.base.contacts_by_channel.get(channel, 0)


def test_the_same_rules_compare_as_unchanged(month: Path) -> None:
    run = run_backtest(EXAMPLE_RULES, compare=EXAMPLE_RULES, **_inputs(month))  # type: ignore[arg-type]
    assert run.other is not None
    diff = compare(run.base, run.other)
    assert {r.change for r in diff.rules} == {"same"}
    assert diff.customers_gained == diff.customers_lost == 0


def test_a_policy_file_replaces_the_rules_own_policy(month: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text("policy:\n  caps:\n    - {channel: any, max: 1, per: week}\n")
    base = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    capped = run_backtest(EXAMPLE_RULES, policy=strict, **_inputs(month)).base.report()  # type: ignore[arg-type]
    assert capped.customers_reached == sum(capped.contacts_by_channel.values()), "one each"
    assert sum(capped.contacts_by_channel.values()) < sum(base.contacts_by_channel.values())


def test_a_policy_file_with_rules_in_it_is_refused_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent(RULE_WITH_QUIET_HOURS))
    with pytest.raises(RuleFileError) as caught:
        run_backtest(EXAMPLE_RULES, [_jsonl(tmp_path / "e.jsonl", drop_off("C1"))], policy=policy)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (str(policy), 6)
    assert "holds only 'policy:'" in problem.message


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []  # what a tag would fetch: src=, href=

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [v or "" for k, v in attrs if k in ("src", "href")]


def test_the_command_writes_a_report_csv_and_a_self_contained_chart(
    month: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    args = ["--events", str(month / "events.jsonl"), "--profiles", str(month / "profiles.jsonl")]
    assert main(["backtest", "--rules", str(EXAMPLE_RULES), *args, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    report = BacktestReport.model_validate_json((out / "report.json").read_text())
    assert f"{report.inputs.events:,} events" in table
    assert all(rule.rule_id in table for rule in report.rules)

    rows = list(csv.DictReader(io.StringIO((out / "rules.csv").read_text())))
    assert [r["rule_id"] for r in rows] == [r.rule_id for r in report.rules]
    assert {"sends_sms", "sends_push", "sends_rm", "suppressed_quiet_hours"} <= set(rows[0])
    daily = list(csv.DictReader(io.StringIO((out / "daily.csv").read_text())))
    assert sum(int(r["contacts"]) for r in daily) == sum(report.contacts_by_channel.values())

    page = (out / "chart.html").read_text()
    tags = _Tags()
    tags.feed(page)
    assert tags.sources == [], "self-contained: nothing to fetch"
    assert page.count("Plotly.newPlot(") == 4  # per day, per hour, per rule, held back
    for title in ("contacts per day", "contacts by hour", "Contacts per rule", "Held back"):
        assert title in page
    for axis in ("local date", "customer's local hour", "contacts", "reason"):
        assert f'"text":"{axis}"' in page  # every axis has a title
    # the three generated days end at 08:00 UTC on the fourth: that day is drawn partial
    last_day = max(report.contacts_per_day)
    assert f"{last_day} (partial)" in page


def test_the_compared_chart_draws_the_difference(month: Path, tmp_path: Path) -> None:
    from app.backtest.chart import render_html

    base = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    compared = tmp_path / "compared"
    shutil.copytree(EXAMPLE_RULES, compared)
    wealth = compared / "salary_wealth.yaml"
    wealth.write_text(wealth.read_text().replace("    owner:", "    enabled: false\n    owner:", 1))
    other = run_backtest(compared, **_inputs(month)).base.report()  # type: ignore[arg-type]
    page = render_html([("base", base), ("compared", other)])
    assert "Difference per rule (compared minus base)" in page
    sends = {r.rule_id: r.sends for r in base.rules}
    assert sends["salary-wealth-offer"] > 0
    # the disabled rule's bar goes down by exactly what it sent
    assert f'"y":[0,0,0,0,0,-{sends["salary-wealth-offer"]}]' in page.replace(" ", "")


def test_a_local_date_is_partial_unless_the_events_cover_it_in_every_customer_zone() -> None:
    from app.backtest.chart import partial_days
    from rules.offline.backtest import InputSummary

    inputs = InputSummary(
        first_event_at=datetime(2026, 11, 2, 0, 0, tzinfo=UTC),
        last_event_at=datetime(2026, 11, 5, 6, 0, tzinfo=UTC),
        utc_offsets_h=(-1.0, 1.0),
    )
    days = ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    # 11-02 began at 23:00 UTC on 11-01 in UTC+1; 11-04 ends at 01:00 UTC on 11-05 in UTC-1
    assert partial_days(days, inputs) == {"2026-11-02", "2026-11-05"}
    everywhere = inputs.model_copy(update={"utc_offsets_h": None})  # UTC-12 to UTC+14
    assert partial_days(days, everywhere) == {"2026-11-02", "2026-11-04", "2026-11-05"}


def test_recorded_feedback_is_replayed_where_it_arrived_and_ends_or_leaves_the_waves(
    tmp_path: Path,
) -> None:
    from schemas.actions import Channel, derive_action_id
    from testkit.factories import click

    at = "2026-11-02T10:00:00+01:00"
    profiles = _jsonl(
        tmp_path / "profiles.jsonl",
        profile("C1", updated_at="2026-11-01T00:00:00+00:00"),
        profile("C2", updated_at="2026-11-01T00:00:00+00:00"),
    )
    first, second = drop_off("C1", step=3, occurred_at=at), drop_off("C2", step=3, occurred_at=at)
    push_to_c1 = derive_action_id(
        customer_id="C1",
        rule_id="loan-dropoff-digital-nudge",
        rule_version=1,
        channel=Channel.PUSH,
        trigger_event_ids=[first["event_id"]],
    )
    opened = {
        "feedback_id": "fb-1",
        "action_id": push_to_c1,
        "customer_id": "C1",
        "channel": "push",
        "status": "opened",
        "occurred_at": "2026-11-02T12:00:00+01:00",
    }
    later = "2026-11-04T10:00:00+01:00"  # moves the replay clock past both waves' due time
    events = _jsonl(
        tmp_path / "events.jsonl",
        first,
        second,
        click("C1", occurred_at="2026-11-02T11:00:00+01:00", screen="home"),
        opened,
        click("C1", occurred_at=later, screen="home"),
        click("C2", occurred_at=later, screen="home"),
    )
    only_recorded = Responses(mode="recorded")
    run = run_backtest(EXAMPLE_RULES, [events], profiles=profiles, responses=only_recorded)
    report = run.base.report()
    sends = {rule.rule_id: rule.sends for rule in report.rules}
    assert sends["loan-dropoff-digital-nudge"] == 2
    assert sends["loan-dropoff-sms-follow-up"] == 1, "C1 opened the push; only C2 gets the SMS"
    assert report.inputs.feedback == 1
    assert report.responses == "1 recorded reports replayed"

    # simulated: the model answers C2's push (and the SMS), never C1's, which has its record
    simulated = run_backtest(EXAMPLE_RULES, [events], profiles=profiles).base
    answered = {f.action_id for f in simulated.feedback_seen if f.feedback_id.startswith("sim-")}
    assert push_to_c1 not in answered and answered
    assert all(f.customer_id == "C2" for f in simulated.feedback_seen if f.action_id in answered)


def test_a_generated_month_shows_the_funnel_per_wave_and_the_campaign_whole(
    month: Path,
) -> None:
    report = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    sent = [rule for rule in report.rules if rule.sends]
    assert sent and all(rule.delivered + rule.failed <= rule.sends for rule in sent)
    assert sum(rule.delivered for rule in sent) > 0 and sum(rule.engaged for rule in sent) > 0
    [campaign] = report.campaigns
    assert campaign.waves == ["loan-dropoff-digital-nudge", "loan-dropoff-sms-follow-up"]
    waves = {rule.rule_id: rule for rule in report.rules if rule.campaign == campaign.campaign}
    assert [waves[w].wave for w in campaign.waves] == [1, 2]
    assert campaign.sent == sum(w.sends for w in waves.values())
    assert campaign.engaged == sum(w.engaged for w in waves.values())
    first = waves["loan-dropoff-digital-nudge"]
    assert campaign.entered == first.sends + first.held_out
    assert "simulated (seed 7" in report.responses
    # seeded: the same run answers the same; another seed answers differently
    again = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    assert again.campaigns == report.campaigns
    reseeded = run_backtest(
        EXAMPLE_RULES,
        responses=Responses(seed=8),
        **_inputs(month),  # type: ignore[arg-type]
    ).base.report()
    assert [r.engaged for r in reseeded.rules] != [r.engaged for r in report.rules]


def test_response_rates_come_from_a_file_and_a_wrong_one_is_a_clear_error(
    month: Path, tmp_path: Path
) -> None:
    never = tmp_path / "never.yaml"
    never.write_text("push: {hard_bounce: 0, soft_bounce: 0, engaged: 0}\n")
    report = run_backtest(
        EXAMPLE_RULES,
        responses=Responses(rates=never),
        **_inputs(month),  # type: ignore[arg-type]
    ).base.report()
    pushed = [r for r in report.rules if any(c.channel == "push" for c in r.channels)]
    assert pushed and all(
        r.engaged == 0 for r in pushed if all(c.channel == "push" for c in r.channels)
    )
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("push: {engaged: 1.5}\n")
    with pytest.raises(BacktestInputError, match=r"wrong.yaml: not valid response rates"):
        run_backtest(EXAMPLE_RULES, responses=Responses(rates=wrong), **_inputs(month))  # type: ignore[arg-type]
    with pytest.raises(BacktestInputError, match="needs recorded feedback"):
        run_backtest(
            EXAMPLE_RULES,
            responses=Responses(rates="estimate"),
            **_inputs(month),  # type: ignore[arg-type]
        )


_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("push: {hard_bounce: .nan, soft_bounce: 0, engaged: 0.1}", "finite number"),
        ("sms: {hard_bounce: .inf, soft_bounce: 0, engaged: 0.1}", "finite number"),
        ("tier_engagement: {mass: -1}", "greater than or equal to 0"),
        ("night_engagement: 2", "less than or equal to 1"),
        ("rm: {reached: 0.5}", "interested"),
        ("push: {engaged: 0.1, hard_bounce: 0, soft_bounce: 0, typo: 1}", "typo"),
        ("- push\n- sms", "expected a mapping"),
        ("push: [unclosed", "YAML"),
        (_BOMB, "alias"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        ("x: " + "y" * 200_000, "limit is"),
    ],
)
def test_ugly_response_rates_files_are_refused_with_the_file_and_the_reason(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    from app.backtest.run import read_rates

    path = tmp_path / "rates.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(BacktestInputError, match=r"rates\.yaml") as raised:
        read_rates(path)
    assert message in str(raised.value)
    with pytest.raises(BacktestInputError, match="cannot read"):
        read_rates(tmp_path / "missing.yaml")


def test_one_set_of_figures_for_chart_html_and_the_console(month: Path) -> None:
    from app.backtest.chart import charts, figure_json, named_reports

    report = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    single = charts(named_reports(report))
    assert [c.id for c in single.all()] == ["per-day-0", "per-hour-0", "per-rule", "held-back"]
    assert single.difference == ()
    diff = compare_reports(report)
    both = charts(named_reports(report, diff))
    assert [c.id for c in both.all()] == [
        "per-day-0",
        "per-hour-0",
        "per-day-1",
        "per-hour-1",
        "per-rule",
        "held-back",
        "difference-per-rule",
        "difference-per-day",
    ]
    assert [r.name for r in both.rulesets] == ["base rules", "compared rules"]
    drawn = figure_json(single.rules[0])
    assert drawn["kind"] == "per-rule" and drawn["layout"]["title"]["text"] == "Contacts per rule"
    assert sum(sum(trace["y"]) for trace in drawn["data"]) == sum(
        report.contacts_by_channel.values()
    )


def compare_reports(report: BacktestReport) -> BacktestDiff:
    """A comparison of a report with itself: no rule changes."""
    return BacktestDiff(
        base=report,
        other=report,
        rules=[],
        contacts_by_channel_delta={},
        customers_gained=0,
        customers_lost=0,
    )


def test_a_compiled_ruleset_runs_as_its_files_do_and_progress_is_reported(month: Path) -> None:
    from rules.language.loader import load_ruleset

    seen: list[tuple[int, float]] = []
    from_files = run_backtest(EXAMPLE_RULES, **_inputs(month)).base.report()  # type: ignore[arg-type]
    compiled = run_backtest(
        load_ruleset(EXAMPLE_RULES),
        on_progress=lambda events, fraction: seen.append((events, fraction)),
        **_inputs(month),  # type: ignore[arg-type]
    )
    assert compiled.base.report() == from_files
    assert seen[0] == (0, 0.0) and len(seen) > 2
    assert [events for events, _ in seen] == sorted(events for events, _ in seen)
    assert 0.0 < seen[-1][1] <= 1.0
    with pytest.raises(ValueError, match="policy"):
        run_backtest(load_ruleset(EXAMPLE_RULES), policy=EXAMPLE_RULES, **_inputs(month))  # type: ignore[arg-type]
