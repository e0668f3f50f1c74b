"""``kairos backtest``: what rules would have done to recorded events, offline."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import EXIT_USAGE, Commands, print_problems, reach_broker
from rules.errors import RuleFileError

if TYPE_CHECKING:
    from app.backtest import TopicRangeSource


def add_commands(commands: Commands) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="what rules would have done to recorded events: per rule and channel, a chart",
    )
    backtest.add_argument("--rules", type=Path, required=True, help="rules directory or file")
    source = backtest.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, nargs="+", help="JSONL event files (.gz too)")
    source.add_argument(
        "--from-kafka",
        action="store_true",
        help="read KAIROS_BROKER_URL's input topics instead (profiles from their beginning)",
    )
    backtest.add_argument(
        "--since", type=datetime.fromisoformat, help="--from-kafka: events from (ISO 8601)"
    )
    backtest.add_argument(
        "--until", type=datetime.fromisoformat, help="--from-kafka: events before (ISO 8601)"
    )
    backtest.add_argument(
        "--timeout", type=float, default=300.0, help="--from-kafka: seconds to read the topics"
    )
    backtest.add_argument("--profiles", type=Path, help="JSONL customer profiles")
    backtest.add_argument("--policy", type=Path, help="a policy file replacing the rules' own")
    backtest.add_argument(
        "--compare", type=Path, metavar="OTHER_RULES", help="a second ruleset to compare with"
    )
    backtest.add_argument(
        "--out", type=Path, help="directory for report.json, rules.csv, daily.csv, chart.html"
    )
    backtest.add_argument("--json", action="store_true", help="JSON instead of a table")
    backtest.add_argument(
        "--responses",
        choices=("simulate", "recorded"),
        default="simulate",
        help="how the channels answer the contacts: recorded reports replayed where they answer "
        "a recorded action and a seeded model for the rest (simulate, the default), or only "
        "the recorded reports",
    )
    backtest.add_argument(
        "--response-rates",
        metavar="FILE|estimate",
        help="the model's rates: a YAML/JSON file (delivery, engagement, bounces, "
        "unsubscribes by channel; tier and night factors), or 'estimate' from the recorded "
        "reports; built-in defaults otherwise",
    )
    backtest.add_argument(
        "--seed", type=int, default=7, help="the response model's seed (same seed, same answers)"
    )
    backtest.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on stderr"
    )
    backtest.set_defaults(handler=_cmd_backtest)


def _cmd_backtest(args: argparse.Namespace) -> int:
    from app.backtest import (
        BacktestInputError,
        Responses,
        TopicRangeSource,
        render_diff,
        render_table,
        run_backtest,
    )
    from app.backtest.output import write_report_files
    from app.garbage import tune_for_batch
    from app.kafka import bootstrap_servers
    from app.settings import load_settings
    from rules.offline.compare import compare
    from schemas.topics import TopicNames

    events: list[Path] | TopicRangeSource = args.events
    if args.from_kafka:
        settings = load_settings()
        bootstrap = bootstrap_servers(settings.broker_url)
        events = TopicRangeSource(
            bootstrap,
            TopicNames(settings.topic_prefix),
            since=args.since,
            until=args.until,
            timeout=reach_broker(bootstrap, args.timeout),
        )
    tune_for_batch()  # a batch job: throughput, not pauses (7-8 % of a replay otherwise)
    try:
        run = run_backtest(
            args.rules,
            events,
            profiles=args.profiles,
            policy=args.policy,
            compare=args.compare,
            progress=None if args.progress == "auto" else args.progress == "on",
            responses=Responses(
                mode=args.responses,
                rates=(
                    "estimate"
                    if args.response_rates == "estimate"
                    else Path(args.response_rates)
                    if args.response_rates
                    else None
                ),
                seed=args.seed,
            ),
        )
    except RuleFileError as exc:
        return print_problems(exc)
    except BacktestInputError as exc:  # a missing --events file: the command line is wrong
        print(f"kairos: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report = run.base.report()
    diff = compare(run.base, run.other) if run.other is not None else None
    document = diff if diff is not None else report
    if args.json:
        print(document.model_dump_json(indent=2))
    else:
        print(render_table(report, run.events_per_second))
        if diff is not None:
            print("\n" + render_diff(diff))
    if args.out:
        written = write_report_files(args.out, report, diff)
        print(f"\nwrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    print(
        f"{run.events:,} events in {run.seconds:.1f}s ({run.events_per_second:,.0f} events/s)",
        file=sys.stderr,
    )
    return 0
