"""``kairos report``: per rule, what the live topics say it did and caused, for a terminal.

The numbers come from :mod:`rules.offline.report` (the same for the live topics, a backtest and a
test); this module only reads the topics and renders the numbers as a table or as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.cli.common import Commands, reach_broker

if TYPE_CHECKING:
    from app.progress import Progress
    from rules.offline.report import RuleReport
    from schemas.conversions import Conversion
    from schemas.decisions import Decision
    from schemas.feedback import Feedback
    from schemas.topics import TopicNames

#: Records between two progress updates: the bar redraws on time, not on every record.
_PROGRESS_EVERY = 256


class Record(Protocol):
    """What the report reads of a topic's record (kafka-python's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...

    @property
    def value(self) -> bytes: ...


@dataclass
class ReportInputs:
    """The decisions, conversions and channel reports read from the topics."""

    decisions: list[Decision] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)


def add_commands(commands: Commands) -> None:
    report = commands.add_parser(
        "report",
        help="per rule: fired, sent by channel, suppressed by reason, held out, the funnel "
        "(delivered, engaged, converted), uplift (95%% CI)",
    )
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    report.add_argument("--timeout", type=float, default=120.0, help="seconds to read the topics")
    report.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress while reading the topics, on stderr (auto: when it is a terminal)",
    )
    report.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from app.kafka import bootstrap_servers, read_to_end
    from app.progress import Progress
    from app.settings import load_settings
    from rules.offline.report import build_report
    from schemas.topics import TopicNames

    settings = load_settings()
    topics = TopicNames(settings.topic_prefix)
    bootstrap = bootstrap_servers(settings.broker_url)
    remaining = reach_broker(bootstrap, args.timeout)
    records = read_to_end(
        bootstrap,
        [topics.decisions, topics.conversions, topics.feedback],
        timeout=remaining,
        client_id="kairos-report",
    )
    enabled = None if args.progress == "auto" else args.progress == "on"
    with Progress("report", "records", enabled=enabled) as progress:
        inputs = read_inputs(records, topics, progress)
    reports = build_report(inputs.decisions, inputs.conversions, inputs.feedback)
    print(to_json(reports) if args.json else render_table(reports))
    return 0


def read_inputs(records: Iterable[Record], topics: TopicNames, progress: Progress) -> ReportInputs:
    """Parse the topics' records, counting them on ``progress`` as they arrive.

    Reading the topics to their end is what takes minutes, and their size is not known up
    front (the broker's end offsets are not trusted): the count and the rate show that it
    moves.
    """
    from schemas.codec import decode_feedback, parse_as
    from schemas.conversions import Conversion
    from schemas.decisions import Decision
    from schemas.errors import InvalidEventError

    inputs = ReportInputs()
    count = 0
    for count, record in enumerate(records, start=1):
        if count % _PROGRESS_EVERY == 0:
            progress.update(count)
        if record.topic == topics.decisions:
            inputs.decisions.append(parse_as(Decision, record.value))
        elif record.topic == topics.conversions:
            inputs.conversions.append(parse_as(Conversion, record.value))
        else:
            try:  # channel systems write this topic: the worker dead-letters what is wrong
                inputs.feedback.append(decode_feedback(record.value))
            except InvalidEventError:
                continue
    progress.update(count)
    return inputs


def render_table(reports: list[RuleReport]) -> str:
    """A readable table for a terminal: per rule (each wave is a rule), then per campaign."""
    from app.backtest.output import (
        campaign_lines,
        counts_text,
        funnel_text,
        percent,
        uplift_text,
    )
    from rules.offline.report import campaign_reports

    header = (
        f"{'rule':<32} {'fired':>6} {'sent':>6} {'held':>5} {'defer':>6}  "
        f"{'conv treated':>13} {'conv holdout':>13} {'uplift [95% CI]':>24}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        ci = uplift_text(r.uplift, r.uplift_ci95)
        lines.append(
            f"{r.rule_id:<32} {r.fired:>6} {r.sent:>6} {r.held_out:>5} {r.deferred:>6}  "
            f"{percent(r.treated_rate):>13} {percent(r.holdout_rate):>13} {ci:>24}"
        )
        if r.wave is not None:
            lines.append(f"{'':<4}campaign {r.campaign}, wave {r.wave}")
        if r.sent_by_channel:
            lines.append(f"{'':<4}sent by channel: {counts_text(r.sent_by_channel)}")
        if r.sent:
            funnel = funnel_text(r.sent, r.delivered, r.engaged, r.treated_conversions, r.failed)
            lines.append(f"{'':<4}{funnel}")
        if r.suppressed_by_reason:
            lines.append(f"{'':<4}suppressed: {counts_text(r.suppressed_by_reason)}")
    for campaign in campaign_reports(reports):
        lines += ["", *campaign_lines(campaign)]
    return "\n".join(lines)


def to_json(reports: list[RuleReport]) -> str:
    """The report as JSON, for dashboards and notebooks: rules (waves), then campaigns."""
    from rules.offline.report import campaign_reports

    rows: list[dict[str, Any]] = [asdict(r) for r in reports]
    campaigns = [c.model_dump(mode="json") for c in campaign_reports(reports)]
    return json.dumps({"rules": rows, "campaigns": campaigns}, indent=2)
