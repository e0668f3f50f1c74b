"""The backtest as a picture: contacts per day by channel, and by hour of the customer's day.

A self-contained HTML page with inline SVG: it opens from a file, from an e-mail or a
ticket, offline, with nothing to install and no script to trust — the usual audience is a
campaign manager, not a notebook user. Hours are the customer's own, so a contact that
would land at 23:00 shows up at 23, whatever the customer's time zone.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from rules.offline.backtest import BacktestReport
from schemas.actions import Channel

_COLOURS = {
    Channel.SMS.value: "#2b6cb0",
    Channel.PUSH.value: "#38a169",
    Channel.RM.value: "#d69e2e",
}
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 860, 260, 56, 40, 16


def _stacked_bars(
    title: str,
    labels: Sequence[str],
    series: dict[str, list[int]],
    label_every: int,
    ticks: Sequence[str] | None = None,
) -> str:
    """An SVG of one stacked bar per label, one colour per channel; ``ticks`` label the axis."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    plot_w, plot_h = _WIDTH - _LEFT - 10, _HEIGHT - _BOTTOM - _TOP
    step = plot_w / max(len(labels), 1)
    bar = max(step * 0.8, 1.0)
    parts = [
        f'<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_WIDTH - 10}" y2="{_TOP + plot_h}" '
        'stroke="#999"/>',
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = _TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{value:,.0f}</text>"
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - 10}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for i, label in enumerate(labels):
        x = _LEFT + i * step + (step - bar) / 2
        y = _TOP + plot_h
        for channel, values in series.items():
            height = plot_h * values[i] / peak
            if height <= 0:
                continue
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{_COLOURS.get(channel, "#718096")}">'
                f"<title>{html.escape(label)} {channel}: {values[i]:,}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" '
                f'font-size="11">{html.escape((ticks or labels)[i])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    return " ".join(
        f'<span style="display:inline-block;width:12px;height:12px;background:{colour}"></span>'
        f" {channel}"
        for channel, colour in _COLOURS.items()
    )


def _section(name: str, report: BacktestReport) -> str:
    days = list(report.contacts_per_day)
    per_day = {c: [report.contacts_per_day[d].get(c, 0) for d in days] for c in _COLOURS}
    per_hour = {
        c: [
            sum(ch.per_hour[h] for rule in report.rules for ch in rule.channels if ch.channel == c)
            for h in range(24)
        ]
        for c in _COLOURS
    }
    hours = [f"{h:02d}" for h in range(24)]
    held = sum(r.suppressed for r in report.rules)
    sent = sum(report.contacts_by_channel.values())
    return (
        f"<h2>{html.escape(name)}: ruleset {html.escape(report.ruleset_version)}</h2>"
        f"<p>{sent:,} contacts to {report.customers_reached:,} customers; "
        f"{held:,} held back by the contact policy or consent; "
        f"{sum(r.held_out for r in report.rules):,} held out for measurement.</p>"
        f"<h3>Contacts per day (customer's local date)</h3>"
        + _stacked_bars(
            "contacts per day", days, per_day, max(1, len(days) // 15), [d[5:] for d in days]
        )
        + "<h3>Contacts by hour of the customer's day</h3>"
        + _stacked_bars("contacts by local hour", hours, per_hour, 1)
    )


def _moment(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def render_html(reports: Sequence[tuple[str, BacktestReport]]) -> str:
    """One page; with ``--compare`` the two rulesets one above the other."""
    first = reports[0][1]
    inputs = first.inputs
    body = "".join(_section(name, report) for name, report in reports)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Kairos backtest</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#1a202c}"
        "h2{margin-top:32px}</style></head><body>"
        f"<h1>Kairos backtest</h1><p>{inputs.events:,} events, {inputs.customers:,} "
        f"customers, {_moment(inputs.first_event_at)} to {_moment(inputs.last_event_at)}.</p>"
        f"<p>{_legend()}</p>{body}</body></html>"
    )
