"""The ``kairos`` command: worker, demo, rules and schema tooling.

Every failure ends in one line on stderr, ``kairos: <what> ...``, naming the variable or
argument to fix, never a traceback (rule-file problems are the exception: one line each).
Exit codes, so scripts and CI can tell a typo from an outage:

* 0 success;
* 1 a runtime failure: the broker unreachable, a rule file refused, a rollback impossible;
  the same command can succeed later without changing it;
* 2 a usage or configuration error: an unknown argument (argparse), an invalid ``KAIROS_*``
  variable, topics whose partition count contradicts ``KAIROS_PARTITIONS``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import (
    ConfigurationError,
    DeploymentError,
    KairosError,
    RollbackError,
    RuleFileError,
)

if TYPE_CHECKING:
    from app.rules_registry import Registry, RulesTopic
    from rules.ruleset import Ruleset
    from schemas.deployment import RulesetBundle

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _cmd_worker(args: argparse.Namespace) -> int:
    from app.settings import load_settings
    from app.worker import run

    run(load_settings())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            customers=args.customers,
            seed=args.seed,
            speed=args.speed,
            duration=args.duration,
            web_port=args.web_port,
            rules_path=args.rules,
        )
    )


def _print_problems(error: RuleFileError) -> int:
    """Every problem on stderr, one per line (file:line:col: message (hint)); exit code 1."""
    for problem in error.problems:
        print(problem, file=sys.stderr)
    print(f"{len(error.problems)} problem(s); ruleset refused", file=sys.stderr)
    return EXIT_FAILURE


def _cmd_rules_validate(args: argparse.Namespace) -> int:
    from rules.language.loader import load_ruleset

    try:
        ruleset = load_ruleset(args.path)
    except RuleFileError as exc:
        return _print_problems(exc)
    print(f"OK: {len(ruleset.rules)} rules, version {ruleset.version}")
    for rule in ruleset.rules:
        state = "enabled" if rule.spec.enabled else "disabled"
        channels = ">".join(c.value for c in rule.channels)
        print(
            f"  {rule.id} v{rule.version} on {rule.spec.event} -> {channels} "
            f"({state}) {rule.source}"
        )
    return 0


def _rules_topic(args: argparse.Namespace) -> RulesTopic:
    from app.rules_registry import RulesTopic
    from app.settings import load_settings

    return RulesTopic.from_settings(load_settings(), timeout=args.timeout)


def _reach_broker(bootstrap: list[str], timeout: float) -> float:
    """Wait for the broker at most ``timeout`` seconds; returns the seconds left of it.

    The topic reader's consumer waits kafka-python's 30 s for an absent broker whatever
    ``--timeout`` says; probing first makes ``--timeout`` the wait and the error one line.

    Raises:
        BrokerUnreachableError: no broker answered in time.

    """
    from app.admin import wait_for_broker

    deadline = time.monotonic() + timeout
    wait_for_broker(bootstrap, timeout)
    return max(0.0, deadline - time.monotonic())


def _live_ruleset(registry: Registry) -> Ruleset | None:
    """The live version compiled, to compare against; None when none is live or usable.

    A live version that does not compile here must not block a deploy: replacing it is
    exactly what ops need then.
    """
    from app.rules_registry import compile_bundle

    if registry.live is None:
        return None
    try:
        return compile_bundle(registry.bundle(registry.live))
    except (DeploymentError, RuleFileError) as exc:
        reason = f"{len(exc.problems)} problem(s)" if isinstance(exc, RuleFileError) else exc
        print(
            f"note: the live version {registry.live} cannot be compiled here ({reason}); "
            "every rule shows as added",
            file=sys.stderr,
        )
        return None


def _cmd_rules_deploy(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from app.rules_registry import compile_files, diff_rulesets, whoami
    from schemas.deployment import RulesetBundle

    try:
        files, ruleset = compile_files(args.path)
    except RuleFileError as exc:
        return _print_problems(exc)
    topic = _rules_topic(args)
    registry = topic.read()
    if registry.live == ruleset.version:
        print(f"{ruleset.version} is already live on {topic.name}; nothing deployed")
        return 0
    diff = diff_rulesets(_live_ruleset(registry), ruleset)
    bundle = RulesetBundle(
        version=ruleset.version,
        files=files,
        deployed_at=datetime.now(UTC),
        deployed_by=args.by or whoami(),
        comment=args.comment,
    )
    pointer = topic.deploy(bundle, registry)
    print(f"Live: {pointer.version} (was {pointer.previous_version or 'nothing deployed'})")
    print("\n".join(diff.lines()))
    return 0


def _cmd_rules_rollback(args: argparse.Namespace) -> int:
    from app.rules_registry import compile_bundle, whoami

    topic = _rules_topic(args)
    registry = topic.read()
    try:
        target = registry.rollback_target(args.to)
    except RollbackError as exc:
        print(f"kairos: cannot roll back: {exc}", file=sys.stderr)
        return 1
    try:
        compile_bundle(registry.bundle(target))  # validate first, as deploy does
    except RuleFileError as exc:
        print(f"kairos: cannot roll back: {target} does not compile here", file=sys.stderr)
        return _print_problems(exc)
    pointer = topic.rollback(registry, args.by or whoami(), target)
    print(f"Live: {pointer.version} (rolled back from {pointer.previous_version})")
    return 0


def _rule_ids(bundle: RulesetBundle) -> str:
    from app.rules_registry import compile_bundle

    try:
        return ", ".join(rule.id for rule in compile_bundle(bundle).rules)
    except RuleFileError as exc:
        return f"(does not compile here: {len(exc.problems)} problem(s))"


def _cmd_rules_list(args: argparse.Namespace) -> int:
    topic = _rules_topic(args)
    registry = topic.read()
    if registry.live is None:
        print(f"Nothing deployed on {topic.name}: workers run their bootstrap rules")
        return 0
    print(f"Live: {registry.live}")
    print("History (oldest first):")
    for pointer in registry.history:
        bundle = registry.bundles.get(pointer.version)
        comment = f' "{bundle.comment}"' if bundle and bundle.comment else ""
        rule_ids = _rule_ids(bundle) if bundle else "(bundle missing)"
        print(
            f"  {pointer.at.isoformat(timespec='seconds')}  {pointer.action.value:<8}  "
            f"{pointer.version}  by {pointer.by}{comment}\n      rules: {rule_ids}"
        )
    others = sorted(set(registry.bundles) - {p.version for p in registry.history})
    if others:
        print("Other stored versions (rollback --to VERSION):")
        for version in others:
            bundle = registry.bundles[version]
            print(
                f"  {version}  deployed {bundle.deployed_at.isoformat(timespec='seconds')} "
                f"by {bundle.deployed_by}\n      rules: {_rule_ids(bundle)}"
            )
    return 0


def _cmd_rules_diff(args: argparse.Namespace) -> int:
    from app.rules_registry import compile_files, diff_rulesets

    try:
        _, ruleset = compile_files(args.path)
    except RuleFileError as exc:
        return _print_problems(exc)
    topic = _rules_topic(args)
    registry = topic.read()
    if registry.live is None:
        print(f"Nothing deployed on {topic.name} yet; every rule is new to the registry")
    else:
        print(f"Deploying {args.path} ({ruleset.version}) instead of live {registry.live}:")
    diff = diff_rulesets(_live_ruleset(registry), ruleset)
    print("\n".join(diff.lines()))
    return 0


def _cmd_rules_test(args: argparse.Namespace) -> int:
    import rules.testing as rule_testing
    from rules.language.loader import load_ruleset

    try:
        ruleset = load_ruleset(args.path)
    except RuleFileError as exc:
        return _print_problems(exc)
    results = rule_testing.run_all(args.path, ruleset)
    if not results:
        print(f"no rule tests found under {args.path}/tests/", file=sys.stderr)
        return 1
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.file}:{result.line}  {result.name}")
        for failure in result.failures:
            print(f"        {failure}")
    failed = sum(not r.passed for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_rules_schema(args: argparse.Namespace) -> int:
    from rules.language.file_schema import write

    print(write())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from app.rules_registry import bootstrap_servers
    from app.settings import load_settings
    from app.topic_reader import read_to_end
    from rules.report import build_report, render_table, to_json
    from schemas.codec import parse_as
    from schemas.conversions import Conversion
    from schemas.decisions import Decision
    from schemas.topics import TopicNames

    settings = load_settings()
    topics = TopicNames(settings.topic_prefix)
    bootstrap = bootstrap_servers(settings.broker_url)
    remaining = _reach_broker(bootstrap, args.timeout)
    decisions: list[Decision] = []
    conversions: list[Conversion] = []
    records = read_to_end(
        bootstrap,
        [topics.decisions, topics.conversions],
        timeout=remaining,
        client_id="kairos-report",
    )
    for record in records:
        if record.topic == topics.decisions:
            decisions.append(parse_as(Decision, record.value))
        else:
            conversions.append(parse_as(Conversion, record.value))
    reports = build_report(decisions, conversions)
    print(to_json(reports) if args.json else render_table(reports))
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from app.backtest import BacktestInputError, run_backtest
    from app.backtest_chart import render_html
    from app.backtest_kafka import TopicRangeSource
    from app.backtest_output import daily_csv, render_diff, render_table, rules_csv
    from app.rules_registry import bootstrap_servers
    from app.settings import load_settings
    from rules.backtest_diff import compare
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
            timeout=_reach_broker(bootstrap, args.timeout),
        )
    try:
        run = run_backtest(
            args.rules,
            events,
            profiles=args.profiles,
            policy=args.policy,
            compare=args.compare,
            progress=None if args.progress == "auto" else args.progress == "on",
        )
    except RuleFileError as exc:
        return _print_problems(exc)
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
        args.out.mkdir(parents=True, exist_ok=True)
        charts = [("rules", report)]
        if diff is not None:
            charts = [("base rules", report), ("compared rules", diff.other)]
        files = {
            "report.json": document.model_dump_json(indent=2),
            "rules.csv": rules_csv(report),
            "daily.csv": daily_csv(report),
            "chart.html": render_html(charts),
        }
        if diff is not None:
            files["rules-other.csv"] = rules_csv(diff.other)
            files["daily-other.csv"] = daily_csv(diff.other)
        for name, text in files.items():
            (args.out / name).write_text(text, encoding="utf-8")
        print(f"\nwrote {', '.join(str(args.out / name) for name in files)}", file=sys.stderr)
    print(
        f"{run.events:,} events in {run.seconds:.1f}s ({run.events_per_second:,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


def _cmd_topics_ensure(args: argparse.Namespace) -> int:
    from app.admin import ensure_topics
    from app.rules_registry import bootstrap_servers
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


def _cmd_generate(args: argparse.Namespace) -> int:
    from app.generate import JsonlSink, KafkaSink, Pacing, Sink, now_start, run
    from app.rules_registry import bootstrap_servers
    from app.settings import load_settings
    from app.synthetic import DEFAULT_START, SyntheticConfig
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
        _reach_broker(bootstrap, args.timeout)
        sink = KafkaSink(bootstrap, topics)
        where = f"Kafka at {settings.broker_url} (topics {settings.topic_prefix}.*)"
    else:
        sink = JsonlSink(args.out)
        where = f"{args.out}/profiles.jsonl and {args.out}/events.jsonl"
    pace = "in real time" if live else f"at {args.rate:,.0f} events/s" if args.rate else ""
    print(f"Generating {config.days:g} day(s) of {config.customers} customers to {where} {pace}")
    summary = run(config, sink, topics, Pacing(realtime=live, rate=args.rate), args.poison_every)
    print(
        f"{summary.profiles:,} profiles, {summary.events:,} events, {summary.poison:,} poison "
        f"messages in {summary.seconds:.1f}s"
    )
    return 0


def _cmd_schemas_export(args: argparse.Namespace) -> int:
    from schemas.jsonschema_export import write

    for path in write(args.directory):
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    from schemas.jsonschema_export import SCHEMA_DIR

    root = argparse.ArgumentParser(
        prog="kairos", description="Real-time event marketing for banks."
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a worker (configured by KAIROS_* variables)")
    worker.set_defaults(handler=_cmd_worker)

    demo = commands.add_parser(
        "demo", help="embedded broker + worker + synthetic traffic, actions shown live"
    )
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--speed",
        type=float,
        default=300.0,
        help="simulated seconds per real second (300: a 30-minute wait takes 6 s)",
    )
    demo.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    demo.add_argument("--web-port", type=int, default=6066)
    demo.add_argument(
        "--rules", type=Path, default=None, help="rules directory (default: examples)"
    )
    demo.set_defaults(handler=_cmd_demo)

    rules = commands.add_parser("rules", help="rule tooling").add_subparsers(
        dest="rules_command", required=True
    )
    validate = rules.add_parser(
        "validate", help="check rule files; every problem with file:line:column"
    )
    validate.add_argument("path", type=Path)
    validate.set_defaults(handler=_cmd_rules_validate)

    test = rules.add_parser("test", help="run the rule tests in PATH/tests/ (offline)")
    test.add_argument("path", type=Path)
    test.set_defaults(handler=_cmd_rules_test)

    schema = rules.add_parser("schema", help="regenerate rules/rule-file.schema.json")
    schema.set_defaults(handler=_cmd_rules_schema)

    deploy = rules.add_parser(
        "deploy", help="validate rule files, then make them live on every worker (no restart)"
    )
    deploy.add_argument("path", type=Path)
    deploy.add_argument("--comment", default="", help="why: kept in the deploy history")
    deploy.add_argument("--by", help="who deploys, for the history (default: user@host)")
    _broker_timeout(deploy)
    deploy.set_defaults(handler=_cmd_rules_deploy)

    rollback = rules.add_parser(
        "rollback", help="make the version live before the current one live again"
    )
    rollback.add_argument("--to", metavar="VERSION", help="any stored version instead")
    rollback.add_argument("--by", help="who rolls back, for the history (default: user@host)")
    _broker_timeout(rollback)
    rollback.set_defaults(handler=_cmd_rules_rollback)

    listing = rules.add_parser("list", help="the live version and the deploy history")
    _broker_timeout(listing)
    listing.set_defaults(handler=_cmd_rules_list)

    diff = rules.add_parser("diff", help="what deploying PATH would change, rule by rule")
    diff.add_argument("path", type=Path)
    _broker_timeout(diff)
    diff.set_defaults(handler=_cmd_rules_diff)

    report = commands.add_parser(
        "report",
        help="per rule: fired, sent by channel, suppressed by reason, held out, uplift (95%% CI)",
    )
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    report.add_argument("--timeout", type=float, default=120.0, help="seconds to read the topics")
    report.set_defaults(handler=_cmd_report)

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
        "--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on stderr"
    )
    backtest.set_defaults(handler=_cmd_backtest)

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

    schemas = commands.add_parser("schemas", help="wire contract tooling").add_subparsers(
        dest="schemas_command", required=True
    )
    export = schemas.add_parser("export", help="write the JSON Schema files")
    export.add_argument("--directory", type=Path, default=SCHEMA_DIR)
    export.set_defaults(handler=_cmd_schemas_export)
    return root


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kairos")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _broker_timeout(command: argparse.ArgumentParser) -> None:
    from app.rules_registry import READ_TIMEOUT_S

    command.add_argument(
        "--timeout",
        type=float,
        default=READ_TIMEOUT_S,
        help=f"seconds to wait for the broker (default: {READ_TIMEOUT_S:g})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure becomes one line on stderr and an exit code.

    Library failures that are not bugs (the broker, the file system) are caught here as a
    last resort, so that a path no command anticipated still ends in one line, not in a
    traceback that would bury the cause (and could print settings values).
    """
    from kafka.errors import KafkaError

    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except RuleFileError as exc:  # e.g. the worker's bootstrap rules: one line per problem
        return _print_problems(exc)
    except ConfigurationError as exc:
        print(f"kairos: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KairosError as exc:
        print(f"kairos: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KafkaError as exc:
        print(
            f"kairos: the broker failed: {exc}; check KAIROS_BROKER_URL and that it is up",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except OSError as exc:  # its text names the file: "[Errno 13] Permission denied: 'x'"
        print(f"kairos: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
