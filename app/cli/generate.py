"""``kairos generate``: seeded synthetic bank traffic to JSONL files or to Kafka."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from app.cli.common import Commands, reach_broker


def add_commands(commands: Commands) -> None:
    generate = commands.add_parser(
        "generate",
        help="seeded synthetic bank traffic: JSONL files (for backtests) or Kafka (live)",
    )
    target = generate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="directory for profiles.jsonl and events.jsonl")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="produce to KAIROS_BROKER_URL's input topics (in real time unless --rate)",
    )
    generate.add_argument("--customers", type=int, default=200)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--days", type=float, default=1.0, help="simulated days")
    generate.add_argument(
        "--activity", type=float, default=1.0, help="multiplies every behaviour rate (load)"
    )
    generate.add_argument(
        "--start",
        type=datetime.fromisoformat,
        help="simulated start, ISO 8601 with offset (default: a fixed date; now when live)",
    )
    generate.add_argument(
        "--rate", type=float, default=0.0, help="Kafka: events/s instead of real time"
    )
    generate.add_argument(
        "--poison-every",
        type=int,
        default=0,
        metavar="N",
        help="add one malformed message per N events (exercises the dead-letter path)",
    )
    generate.add_argument(
        "--timeout", type=float, default=30.0, help="--to-kafka: seconds to wait for the broker"
    )
    generate.set_defaults(handler=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from app.kafka import bootstrap_servers
    from app.settings import load_settings
    from app.synthetic import (
        DEFAULT_START,
        JsonlSink,
        KafkaSink,
        Pacing,
        Sink,
        SyntheticConfig,
        now_start,
        write_traffic,
    )
    from schemas.topics import TopicNames

    settings = load_settings()
    topics = TopicNames(settings.topic_prefix)
    live = args.to_kafka and not args.rate
    config = SyntheticConfig(
        seed=args.seed,
        customers=args.customers,
        days=args.days,
        activity=args.activity,
        start=args.start or (now_start() if live else DEFAULT_START),
    )
    sink: Sink
    if args.to_kafka:
        bootstrap = bootstrap_servers(settings.broker_url)
        reach_broker(bootstrap, args.timeout)
        sink = KafkaSink(bootstrap, topics)
        where = f"Kafka at {settings.broker_url} (topics {settings.topic_prefix}.*)"
    else:
        sink = JsonlSink(args.out)
        where = f"{args.out}/profiles.jsonl and {args.out}/events.jsonl"
    pace = "in real time" if live else f"at {args.rate:,.0f} events/s" if args.rate else ""
    print(f"Generating {config.days:g} day(s) of {config.customers} customers to {where} {pace}")
    pacing = Pacing(realtime=live, rate=args.rate)
    summary = write_traffic(config, sink, topics, pacing, args.poison_every)
    print(
        f"{summary.profiles:,} profiles, {summary.events:,} events, {summary.poison:,} poison "
        f"messages in {summary.seconds:.1f}s"
    )
    return 0
