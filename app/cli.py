"""The ``kairos`` command: worker, demo, rules and schema tooling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.errors import KairosError, RuleFileError


def _cmd_worker(args: argparse.Namespace) -> int:
    from app.settings import Settings
    from app.worker import run

    run(Settings())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            customers=args.customers,
            seed=args.seed,
            rate=args.rate,
            duration=args.duration,
            web_port=args.web_port,
            rules_path=args.rules,
        )
    )


def _cmd_rules_validate(args: argparse.Namespace) -> int:
    from rules.loader import load_ruleset

    try:
        ruleset = load_ruleset(args.path)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); ruleset refused", file=sys.stderr)
        return 1
    print(f"OK: {len(ruleset.rules)} rules, version {ruleset.version}")
    for rule in ruleset.rules:
        state = "enabled" if rule.spec.enabled else "disabled"
        channels = ">".join(c.value for c in rule.channels)
        print(
            f"  {rule.id} v{rule.version} on {rule.spec.event} -> {channels} "
            f"({state}) {rule.source}"
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
    commands = root.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a worker (configured by KAIROS_* variables)")
    worker.set_defaults(handler=_cmd_worker)

    demo = commands.add_parser(
        "demo", help="embedded broker + worker + synthetic traffic, actions shown live"
    )
    demo.add_argument("--customers", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
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

    schemas = commands.add_parser("schemas", help="wire contract tooling").add_subparsers(
        dest="schemas_command", required=True
    )
    export = schemas.add_parser("export", help="write the JSON Schema files")
    export.add_argument("--directory", type=Path, default=SCHEMA_DIR)
    export.set_defaults(handler=_cmd_schemas_export)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KairosError as exc:
        print(f"kairos: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
