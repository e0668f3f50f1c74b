"""What every command shares: exit codes, rule-file problems on stderr, the broker wait."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TypeAlias

from rules.errors import RuleFileError

EXIT_FAILURE = 1
EXIT_USAGE = 2

#: What ``ArgumentParser.add_subparsers`` returns: each command group adds its commands to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def print_problems(error: RuleFileError) -> int:
    """Every problem on stderr, one per line (file:line:col: message (hint)); exit code 1."""
    for problem in error.problems:
        print(problem, file=sys.stderr)
    print(f"{len(error.problems)} problem(s); ruleset refused", file=sys.stderr)
    return EXIT_FAILURE


def reach_broker(bootstrap: list[str], timeout: float) -> float:
    """Wait for the broker at most ``timeout`` seconds; returns the seconds left of it.

    The topic reader's consumer waits kafka-python's 30 s for an absent broker whatever
    ``--timeout`` says; probing first makes ``--timeout`` the wait and the error one line.

    Raises:
        BrokerUnreachableError: no broker answered in time.

    """
    from app.kafka import wait_for_broker

    deadline = time.monotonic() + timeout
    wait_for_broker(bootstrap, timeout)
    return max(0.0, deadline - time.monotonic())
