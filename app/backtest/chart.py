"""The backtest as pictures: contacts per day and by local hour, per rule, held back by reason.

One set of Plotly figures, drawn in two places: ``chart.html`` (``kairos backtest --out``), one
HTML page with plotly.js inlined that opens from a file, from an e-mail or a ticket, offline,
with nothing to install and nothing fetched — the usual audience is a campaign manager, not a
notebook user — and the console's backtest page, which draws the same figures from their JSON
with the plotly.js it serves (:func:`charts` builds them for both, :func:`figure_json`
serialises one). The library gives what hand-drawn SVG did not: round axis ticks, axis
titles, hover values and a legend that hides a series on click.

* Hours are the customer's own, so a contact that would land at 23:00 shows up at 23,
  whatever the customer's time zone.
* A day the events cover only in part (the first and the last, as a rule) is drawn paler and
  labelled "partial": a month that ends at noon would otherwise look like a collapse.
* With ``--compare``, each picture shows both rulesets side by side, and a last section
  draws the comparison as a difference (compared minus base), per rule and per day: the
  question is "what changes", and two similar charts one above the other hide it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from rules.offline.backtest import BacktestReport, InputSummary
from rules.offline.compare import BacktestDiff
from schemas.actions import Channel

_COLOURS = {
    Channel.SMS.value: "#2b6cb0",
    Channel.PUSH.value: "#38a169",
    Channel.RM.value: "#d69e2e",
}
_RULESET_COLOURS = ("#4a5568", "#dd6b20")
_PARTIAL = "partial"
#: A ruleset's report under the name its charts give it ("rules", "base rules", ...).
Named = tuple[str, BacktestReport]


def named_reports(report: BacktestReport, diff: BacktestDiff | None = None) -> list[Named]:
    """The reports a backtest's charts draw, named: one, or with a comparison both."""
    if diff is None:
        return [("rules", report)]
    return [("base rules", diff.base), ("compared rules", diff.other)]


def partial_days(days: Sequence[str], inputs: InputSummary) -> set[str]:
    """The local dates the events cover only in part.

    A local date runs from its midnight in the easternmost customer zone to its midnight in
    the westernmost (``inputs.utc_offsets_h``; without it, every zone on Earth: UTC-12 to
    UTC+14); it is whole only if the events began before the first and ended after the last.
    """
    first, last = inputs.first_event_at, inputs.last_event_at
    low, high = inputs.utc_offsets_h or (-12.0, 14.0)
    partial = set()
    for day in days:
        midnight = datetime.fromisoformat(day)
        begins = midnight - timedelta(hours=high)  # naive UTC
        ends = midnight + timedelta(hours=24 - low)
        if first is not None and first.astimezone(UTC).replace(tzinfo=None) > begins:
            partial.add(day)
        if last is not None and last.astimezone(UTC).replace(tzinfo=None) < ends:
            partial.add(day)
    return partial


def _figure(title: str, x_title: str, y_title: str, stacked: bool = True) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title={"text": title, "x": 0},
        barmode="stack" if stacked else "group",
        height=340,
        margin={"l": 64, "r": 16, "t": 72, "b": 56},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        template="plotly_white",
    )
    figure.update_xaxes(title_text=x_title, automargin=True)
    figure.update_yaxes(title_text=y_title, rangemode="tozero", tickformat=",d")
    return figure


def per_day_figure(name: str, report: BacktestReport) -> go.Figure:
    """Contacts per customer's local date, by channel; partial days paler and labelled."""
    days = sorted(report.contacts_per_day)
    partial = partial_days(days, report.inputs)
    labels = [f"{day} ({_PARTIAL})" if day in partial else day for day in days]
    figure = _figure(f"{name}: contacts per day (customer's local date)", "local date", "contacts")
    for channel, colour in _COLOURS.items():
        figure.add_bar(
            name=channel,
            x=labels,
            y=[report.contacts_per_day[day].get(channel, 0) for day in days],
            marker={"color": colour, "opacity": [0.4 if d in partial else 1.0 for d in days]},
        )
    figure.update_xaxes(type="category")
    return figure


def per_hour_figure(name: str, report: BacktestReport) -> go.Figure:
    """Contacts by the customer's local hour of the day, by channel."""
    figure = _figure(
        f"{name}: contacts by hour of the customer's day", "customer's local hour", "contacts"
    )
    for channel, colour in _COLOURS.items():
        counts = [
            sum(
                c.per_hour[h]
                for rule in report.rules
                for c in rule.channels
                if c.channel == channel
            )
            for h in range(24)
        ]
        figure.add_bar(name=channel, x=list(range(24)), y=counts, marker_color=colour)
    figure.update_xaxes(tickmode="linear", dtick=1)
    return figure


def per_rule_figure(reports: Sequence[Named]) -> go.Figure:
    """Contacts per rule by channel; with two rulesets, side by side (the second hatched)."""
    figure = _figure("Contacts per rule", "rule", "contacts", stacked=len(reports) == 1)
    for index, (name, report) in enumerate(reports):
        for channel, colour in _COLOURS.items():
            figure.add_bar(
                name=f"{channel} ({name})" if len(reports) > 1 else channel,
                x=[rule.rule_id for rule in report.rules],
                y=[
                    sum(c.sends for c in rule.channels if c.channel == channel)
                    for rule in report.rules
                ],
                marker={"color": colour, "pattern": {"shape": "" if index == 0 else "/"}},
                offsetgroup=str(index),
            )
    figure.update_layout(barmode="stack" if len(reports) == 1 else "relative")
    return figure


def held_back_figure(reports: Sequence[Named]) -> go.Figure:
    """Decisions held back, by suppression reason, and held out for measurement."""
    figure = _figure("Held back, by reason", "reason", "decisions", stacked=False)
    for index, (name, report) in enumerate(reports):
        reasons: dict[str, int] = {}
        for rule in report.rules:
            for reason, count in rule.suppressed_by_reason.items():
                reasons[reason] = reasons.get(reason, 0) + count
        reasons["held out"] = sum(rule.held_out for rule in report.rules)
        figure.add_bar(
            name=name,
            x=list(reasons),
            y=list(reasons.values()),
            marker_color=_RULESET_COLOURS[index % len(_RULESET_COLOURS)],
        )
    return figure


def difference_figures(base: BacktestReport, other: BacktestReport) -> tuple[go.Figure, go.Figure]:
    """Compared minus base: per rule (sends, held back) and per day (contacts)."""
    rules = sorted({r.rule_id for r in base.rules} | {r.rule_id for r in other.rules})
    before = {r.rule_id: r for r in base.rules}
    after = {r.rule_id: r for r in other.rules}

    def delta(rule_id: str, field: str) -> int:
        return int(getattr(after.get(rule_id), field, 0) or 0) - int(
            getattr(before.get(rule_id), field, 0) or 0
        )

    by_rule = _figure("Difference per rule (compared minus base)", "rule", "change", stacked=False)
    by_rule.add_bar(name="contacts sent", x=rules, y=[delta(r, "sends") for r in rules])
    by_rule.add_bar(name="held back", x=rules, y=[delta(r, "suppressed") for r in rules])
    by_rule.update_yaxes(rangemode="normal", zeroline=True, zerolinewidth=2)

    days = sorted(set(base.contacts_per_day) | set(other.contacts_per_day))

    def total(report: BacktestReport, day: str) -> int:
        return sum(report.contacts_per_day.get(day, {}).values())

    by_day = _figure("Difference per day (compared minus base)", "local date", "change in contacts")
    by_day.add_bar(
        name="contacts",
        x=days,
        y=[total(other, d) - total(base, d) for d in days],
        marker_color=_RULESET_COLOURS[1],
    )
    by_day.update_xaxes(type="category")
    by_day.update_yaxes(rangemode="normal", zeroline=True, zerolinewidth=2)
    return by_rule, by_day


@dataclass(frozen=True)
class Chart:
    """One figure of a backtest, named so a page can place it.

    ``kind`` says what it shows (``per-day``, ``per-hour``, ``per-rule``, ``held-back``,
    ``difference-per-rule``, ``difference-per-day``); ``id`` is unique in the backtest's
    charts (the per-ruleset kinds carry the ruleset's index: ``per-day-1``); ``ruleset`` names
    whose figure a per-ruleset one is.
    """

    id: str
    kind: str
    figure: go.Figure
    ruleset: str | None = None
    ruleset_index: int | None = None


@dataclass(frozen=True)
class RulesetCharts:
    """One ruleset's report and its own charts (per day, per hour)."""

    name: str
    report: BacktestReport
    charts: tuple[Chart, ...]


@dataclass(frozen=True)
class Charts:
    """Every chart of a backtest, in the order both pages show them."""

    rulesets: tuple[RulesetCharts, ...]
    rules: tuple[Chart, ...]
    difference: tuple[Chart, ...] = ()

    def all(self) -> list[Chart]:
        """Every chart, in page order."""
        return [
            *(chart for ruleset in self.rulesets for chart in ruleset.charts),
            *self.rules,
            *self.difference,
        ]


def charts(reports: Sequence[Named]) -> Charts:
    """The figures of one backtest (or two, compared: then their difference too)."""
    rulesets = tuple(
        RulesetCharts(
            name,
            report,
            (
                Chart(f"per-day-{index}", "per-day", per_day_figure(name, report), name, index),
                Chart(f"per-hour-{index}", "per-hour", per_hour_figure(name, report), name, index),
            ),
        )
        for index, (name, report) in enumerate(reports)
    )
    rules = (
        Chart("per-rule", "per-rule", per_rule_figure(reports)),
        Chart("held-back", "held-back", held_back_figure(reports)),
    )
    difference: tuple[Chart, ...] = ()
    if len(reports) == 2:
        by_rule, by_day = difference_figures(reports[0][1], reports[1][1])
        difference = (
            Chart("difference-per-rule", "difference-per-rule", by_rule),
            Chart("difference-per-day", "difference-per-day", by_day),
        )
    return Charts(rulesets, rules, difference)


def figure_json(chart: Chart) -> dict[str, Any]:
    """One chart as the console's page draws it: ``Plotly.react(node, data, layout)``."""
    figure: dict[str, Any] = json.loads(pio.to_json(chart.figure, validate=False))
    return {
        "id": chart.id,
        "kind": chart.kind,
        "ruleset": chart.ruleset,
        "ruleset_index": chart.ruleset_index,
        "data": figure.get("data", []),
        "layout": figure.get("layout", {}),
    }


def _moment(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def _summary(name: str, report: BacktestReport) -> str:
    held = sum(r.suppressed for r in report.rules)
    sent = sum(report.contacts_by_channel.values())
    return (
        f"<h2>{html.escape(name)}: ruleset {html.escape(report.ruleset_version)}</h2>"
        f"<p>{sent:,} contacts to {report.customers_reached:,} customers; "
        f"{held:,} held back by the contact policy or consent; "
        f"{sum(r.held_out for r in report.rules):,} held out for measurement.</p>"
    )


def render_html(reports: Sequence[Named]) -> str:
    """One page; with ``--compare`` both rulesets, then their difference."""
    first = reports[0][1]
    inputs = first.inputs
    drawn = charts(reports)
    sections: list[str | go.Figure] = []
    for ruleset in drawn.rulesets:
        sections.append(_summary(ruleset.name, ruleset.report))
        sections += [chart.figure for chart in ruleset.charts]
    sections.append("<h2>Rules</h2>")
    sections += [chart.figure for chart in drawn.rules]
    if drawn.difference:
        sections.append("<h2>What the compared rules change</h2>")
        sections += [chart.figure for chart in drawn.difference]
    body = []
    script_included = False
    for section in sections:
        if isinstance(section, str):
            body.append(section)
            continue
        body.append(
            section.to_html(
                full_html=False,
                include_plotlyjs=not script_included,  # inlined once, for the whole page
                config={"displaylogo": False, "responsive": True},
            )
        )
        script_included = True
    days = sorted(first.contacts_per_day)
    partial = sorted(partial_days(days, inputs))
    note = (
        f"<p>Days the events cover only in part are drawn paler and marked partial: "
        f"{', '.join(partial)}.</p>"
        if partial
        else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Kairos backtest</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#1a202c}"
        "h2{margin-top:32px}</style></head><body>"
        f"<h1>Kairos backtest</h1><p>{inputs.events:,} events, {inputs.customers:,} "
        f"customers, {_moment(inputs.first_event_at)} to {_moment(inputs.last_event_at)}.</p>"
        f"{note}{''.join(body)}</body></html>"
    )
