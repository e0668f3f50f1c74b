"""The backtest as pictures: contacts per day and by local hour, per rule, held back by reason.

One HTML page drawn by Plotly, with plotly.js inlined: it opens from a file, from an e-mail
or a ticket, offline, with nothing to install and nothing fetched — the usual audience is a
campaign manager, not a notebook user. The library gives what hand-drawn SVG did not: round
axis ticks, axis titles, hover values and a legend that hides a series on click.

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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go

from rules.offline.backtest import BacktestReport, InputSummary
from schemas.actions import Channel

_COLOURS = {
    Channel.SMS.value: "#2b6cb0",
    Channel.PUSH.value: "#38a169",
    Channel.RM.value: "#d69e2e",
}
_RULESET_COLOURS = ("#4a5568", "#dd6b20")
_PARTIAL = "partial"


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


def _per_day(name: str, report: BacktestReport) -> go.Figure:
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


def _per_hour(name: str, report: BacktestReport) -> go.Figure:
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


def _per_rule(reports: Sequence[tuple[str, BacktestReport]]) -> go.Figure:
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


def _held_back(reports: Sequence[tuple[str, BacktestReport]]) -> go.Figure:
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


def _difference(base: BacktestReport, other: BacktestReport) -> list[go.Figure]:
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
    return [by_rule, by_day]


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


def render_html(reports: Sequence[tuple[str, BacktestReport]]) -> str:
    """One page; with ``--compare`` both rulesets, then their difference."""
    first = reports[0][1]
    inputs = first.inputs
    sections: list[str | go.Figure] = []
    for name, report in reports:
        sections += [_summary(name, report), _per_day(name, report), _per_hour(name, report)]
    sections.append("<h2>Rules</h2>")
    sections += [_per_rule(reports), _held_back(reports)]
    if len(reports) == 2:
        sections.append("<h2>What the compared rules change</h2>")
        sections += _difference(reports[0][1], reports[1][1])
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
