"""``kairos topics``: topic administration (create every Kairos topic, once, up front)."""

from __future__ import annotations

import argparse

from app.cli.common import Commands


def add_commands(commands: Commands) -> None:
    topics = commands.add_parser("topics", help="topic administration").add_subparsers(
        dest="topics_command", required=True
    )
    ensure = topics.add_parser(
        "ensure",
        help="create missing Kairos topics with KAIROS_PARTITIONS partitions and compaction "
        "where needed (run once before the first worker)",
    )
    ensure.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the broker"
    )
    ensure.set_defaults(handler=_cmd_topics_ensure)


def _cmd_topics_ensure(args: argparse.Namespace) -> int:
    from app.kafka import bootstrap_servers, ensure_topics
    from app.settings import load_settings
    from schemas.topics import TopicNames

    settings = load_settings()
    created = ensure_topics(
        bootstrap_servers(settings.broker_url),
        TopicNames(settings.topic_prefix),
        settings.partitions,
        settings.replication_factor,
        timeout=args.timeout,
    )
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} topic(s) created; every Kairos topic exists")
    return 0
