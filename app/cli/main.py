"""The ``kairos`` command: worker, demo, console, rules and schema tooling.

Every failure ends in one line on stderr, ``kairos: <what> ...``, naming the variable or
argument to fix, never a traceback (rule-file problems are the exception: one line each).
Exit codes, so scripts and CI can tell a typo from an outage:

* 0 success;
* 1 a runtime failure: the broker unreachable, a rule file refused, a rollback impossible;
  the same command can succeed later without changing it;
* 2 a usage or configuration error: an unknown argument (argparse), an invalid ``KAIROS_*``
  variable, topics whose partition count contradicts ``KAIROS_PARTITIONS``.

Each command group is a module of this package with its sub-parser and its handlers; the
handlers import what they run when they run, so ``kairos --help`` starts in no time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import (
    backtest,
    console,
    demo,
    generate,
    ops,
    report,
    rules,
    schemas,
    topics,
    worker,
)
from app.cli.common import EXIT_FAILURE, EXIT_USAGE, print_problems
from app.errors import ConfigurationError
from rules.errors import RuleFileError
from schemas.errors import KairosError

#: Command groups in the order ``kairos --help`` lists them.
_GROUPS = (worker, demo, console, rules, report, backtest, generate, topics, ops, schemas)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kairos", description="Real-time event marketing for banks."
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.add_commands(commands)
    return root


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kairos")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


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
        return print_problems(exc)
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
