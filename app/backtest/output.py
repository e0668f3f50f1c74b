"""A backtest report as marketing ops read it: a terminal table, CSV for a spreadsheet, JSON.

The table answers the four questions in order — how many customers, which channels, what
hours, how much the policy held back — and the CSV columns are fixed (every channel and
every reason code, zeros included) so a spreadsheet built on one run still fits the next.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from app.backtest.chart import named_reports, render_html
from rules.offline.backtest import BacktestReport, RuleSummary
from rules.offline.compare import BacktestDiff
from rules.offline.report import CampaignReport
from schemas.actions import Channel
from schemas.decisions import Reason

CHANNELS = [channel.value for channel in Channel]
_SUPPRESSION_REASONS = [
    reason.value
    for reason in Reason
    if reason not in (Reason.RULE_MATCHED, Reason.HOLDOUT)  # outcomes, not suppressions
]


def _hour(hour: int | None) -> str:
    return "-" if hour is None else f"{hour:02d}:00"


def _sends(rule: RuleSummary, channel: str) -> int:
    return next((c.sends for c in rule.channels if c.channel == channel), 0)


def render_table(report: BacktestReport, events_per_second: float | None = None) -> str:
    inputs = report.inputs
    span = (
        f"{inputs.first_event_at:%Y-%m-%d %H:%M} to {inputs.last_event_at:%Y-%m-%d %H:%M} UTC"
        if inputs.first_event_at and inputs.last_event_at
        else "no events"
    )
    speed = f", {events_per_second:,.0f} events/s" if events_per_second else ""
    lines = [
        f"Backtest of ruleset {report.ruleset_version}: {inputs.events:,} events, "
        f"{inputs.profiles:,} profiles, {inputs.customers:,} customers ({span}{speed})",
        f"re-deliveries recognised {inputs.duplicates:,}, too late for windows {inputs.late:,}"
        + (
            f"; rejected as the worker would dead-letter them: {counts_text(inputs.rejected)}"
            if inputs.rejected
            else ""
        ),
        "",
    ]
    header = (
        f"{'rule':<32} {'ver':>3} {'fires':>7} {'sends':>7} {'held':>6} {'defer':>6} "
        f"{'suppr':>7} {'reached':>8} " + " ".join(f"{c:>6}" for c in CHANNELS) + f" {'peak':>6}"
    )
    lines += [header, "-" * len(header)]
    for rule in report.rules:
        version = "-" if rule.rule_version is None else str(rule.rule_version)
        lines.append(
            f"{rule.rule_id:<32} {version:>3} {rule.fires:>7,} {rule.sends:>7,} "
            f"{rule.held_out:>6,} {rule.deferred:>6,} {rule.suppressed:>7,} "
            f"{rule.customers_reached:>8,} "
            + " ".join(f"{_sends(rule, c):>6,}" for c in CHANNELS)
            + f" {_hour(rule.peak_hour):>6}"
        )
        if rule.wave is not None:
            lines.append(f"    campaign {rule.campaign}, wave {rule.wave}")
        if rule.sends:
            lines.append(
                "    "
                + funnel_text(
                    rule.sends, rule.delivered, rule.engaged, rule.treated_conversions, rule.failed
                )
            )
        if rule.suppressed_by_reason:
            lines.append(f"    suppressed: {counts_text(rule.suppressed_by_reason)}")
    total_sends = sum(report.contacts_by_channel.values())
    lines += [
        "-" * len(header),
        f"{'all rules':<32} {'':>3} {sum(r.fires for r in report.rules):>7,} {total_sends:>7,} "
        f"{sum(r.held_out for r in report.rules):>6,} {sum(r.deferred for r in report.rules):>6,} "
        f"{sum(r.suppressed for r in report.rules):>7,} {report.customers_reached:>8,} "
        + " ".join(f"{report.contacts_by_channel.get(c, 0):>6,}" for c in CHANNELS),
        "",
        "contacts per day (customer's local date):",
        f"  {'date':<10} " + " ".join(f"{c:>6}" for c in CHANNELS) + f" {'total':>6}",
    ]
    for day, counts in report.contacts_per_day.items():
        lines.append(
            f"  {day:<10} "
            + " ".join(f"{counts.get(c, 0):>6,}" for c in CHANNELS)
            + f" {sum(counts.values()):>6,}"
        )
    for campaign in report.campaigns:
        lines += ["", *campaign_lines(campaign)]
    lines.append(f"\nchannel reports: {report.responses}")
    if report.pending_at_end:
        lines.append(
            f"\nstill waiting when the events ran out: {counts_text(report.pending_at_end)}"
        )
    return "\n".join(lines)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def funnel_text(sent: int, delivered: int, engaged: int, converted: int, failed: int) -> str:
    """``funnel: sent 100 -> delivered 96 (96.0%) -> ...``, each rate of the contacts sent."""

    def step(count: int) -> str:
        return f"{count:,} ({percent(count / sent if sent else None)})"

    return (
        f"funnel: sent {sent:,} -> delivered {step(delivered)} -> engaged {step(engaged)} "
        f"-> converted {step(converted)}; failed {failed:,}"
    )


def uplift_text(uplift: float | None, ci95: tuple[float, float] | None) -> str:
    if uplift is None or ci95 is None:
        return "-"
    return f"{percent(uplift)} [{percent(ci95[0])}, {percent(ci95[1])}]"


def campaign_lines(campaign: CampaignReport) -> list[str]:
    """A multi-wave campaign: its waves, their funnel together, its uplift as a whole."""
    return [
        f"campaign {campaign.campaign}: waves {' -> '.join(campaign.waves)}",
        f"  entered {campaign.entered:,} (held out {campaign.held_out:,}); "
        + funnel_text(
            campaign.sent,
            campaign.delivered,
            campaign.engaged,
            campaign.treated_conversions,
            campaign.failed,
        ),
        f"  converted: treated {percent(campaign.treated_rate)}, holdout "
        f"{percent(campaign.holdout_rate)}; uplift of the whole campaign "
        f"{uplift_text(campaign.uplift, campaign.uplift_ci95)} (95% CI)",
    ]


def render_diff(diff: BacktestDiff) -> str:
    header = (
        f"{'rule':<32} {'change':<8} {'sends before':>12} {'after':>7} {'delta':>7} "
        f"{'gained':>7} {'lost':>6} {'suppr before':>12} {'after':>7}"
    )
    lines = [
        f"Comparing ruleset {diff.other.ruleset_version} with {diff.base.ruleset_version} "
        f"on the same {diff.base.inputs.events:,} events",
        "",
        header,
        "-" * len(header),
    ]
    for rule in diff.rules:
        lines.append(
            f"{rule.rule_id:<32} {rule.change:<8} {rule.sends_before:>12,} {rule.sends_after:>7,} "
            f"{rule.sends_after - rule.sends_before:>+7,} {rule.customers_gained:>7,} "
            f"{rule.customers_lost:>6,} {rule.suppressed_before:>12,} {rule.suppressed_after:>7,}"
        )
    lines += [
        "-" * len(header),
        "contacts by channel: "
        + ", ".join(
            f"{c} {diff.base.contacts_by_channel.get(c, 0):,} -> "
            f"{diff.other.contacts_by_channel.get(c, 0):,} ({delta:+,})"
            for c, delta in diff.contacts_by_channel_delta.items()
        ),
        f"customers contacted: {diff.base.customers_reached:,} -> "
        f"{diff.other.customers_reached:,} (gained {diff.customers_gained:,}, "
        f"lost {diff.customers_lost:,})",
    ]
    return "\n".join(lines)


def _csv(rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def rules_csv(report: BacktestReport) -> str:
    """One row per rule, fixed columns."""
    header: list[object] = [
        "rule_id",
        "rule_version",
        "fires",
        "sends",
        "held_out",
        "deferred",
        "suppressed",
        "customers_reached",
        "peak_hour_local",
        *(f"sends_{c}" for c in CHANNELS),
        *(f"reached_{c}" for c in CHANNELS),
        *(f"suppressed_{r}" for r in _SUPPRESSION_REASONS),
        "campaign",
        "wave",
        "delivered",
        "engaged",
        "failed",
        "treated_conversions",
        "holdout_conversions",
        "uplift",
    ]
    rows: list[list[object]] = [header]
    for rule in report.rules:
        reached = {c.channel: c.customers_reached for c in rule.channels}
        rows.append(
            [
                rule.rule_id,
                "" if rule.rule_version is None else rule.rule_version,
                rule.fires,
                rule.sends,
                rule.held_out,
                rule.deferred,
                rule.suppressed,
                rule.customers_reached,
                "" if rule.peak_hour is None else rule.peak_hour,
                *(_sends(rule, c) for c in CHANNELS),
                *(reached.get(c, 0) for c in CHANNELS),
                *(rule.suppressed_by_reason.get(r, 0) for r in _SUPPRESSION_REASONS),
                rule.campaign or "",
                "" if rule.wave is None else rule.wave,
                rule.delivered,
                rule.engaged,
                rule.failed,
                rule.treated_conversions,
                rule.holdout_conversions,
                "" if rule.uplift is None else f"{rule.uplift:.4f}",
            ]
        )
    return _csv(rows)


def daily_csv(report: BacktestReport) -> str:
    """One row per local day, rule and channel with contacts: for pivot tables."""
    rows: list[list[object]] = [["date", "rule_id", "channel", "contacts"]]
    daily = sorted(
        (day, rule.rule_id, channel.channel, count)
        for rule in report.rules
        for channel in rule.channels
        for day, count in channel.per_day.items()
    )
    rows.extend([day, rule_id, channel, count] for day, rule_id, channel, count in daily)
    return _csv(rows)


def counts_text(counts: dict[str, int]) -> str:
    """``{"cooldown": 1200, "no_consent": 3}`` as ``cooldown 1,200, no_consent 3``."""
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def report_files(report: BacktestReport, diff: BacktestDiff | None = None) -> dict[str, str]:
    """What ``--out`` writes, by file name: the JSON document, the CSVs and the chart.

    With a comparison the JSON is the diff, the chart shows both rulesets and the other
    ruleset's CSVs come as ``*-other.csv``.
    """
    document = diff if diff is not None else report
    files = {
        "report.json": document.model_dump_json(indent=2),
        "rules.csv": rules_csv(report),
        "daily.csv": daily_csv(report),
        "chart.html": render_html(named_reports(report, diff)),
    }
    if diff is not None:
        files["rules-other.csv"] = rules_csv(diff.other)
        files["daily-other.csv"] = daily_csv(diff.other)
    return files


def write_report_files(
    out: Path, report: BacktestReport, diff: BacktestDiff | None = None
) -> list[Path]:
    """Write :func:`report_files` into ``out`` (made if missing); the paths written.

    ``kairos backtest --out`` and the console's backtest runs both write with it, so a folder
    either made opens the same way.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in report_files(report, diff).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
