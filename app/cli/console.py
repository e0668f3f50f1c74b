"""``kairos console``: the campaign console for marketing ops, and its users file.

``kairos console`` serves the web console (store, follower, web server; Ctrl-C stops it);
``kairos console hash-password USER`` prints a users-file line for
``KAIROS_CONSOLE_USERS_FILE``, asking for the password without echoing it (or reading it
from stdin with ``--stdin``, for scripts), so the password never sits in shell history.
"""

from __future__ import annotations

import argparse
import sys

from app.cli.common import EXIT_USAGE, Commands


def add_commands(commands: Commands) -> None:
    console = commands.add_parser(
        "console",
        help="the campaign console for marketing ops, in a browser (KAIROS_CONSOLE_*)",
        description="Serve the Kairos console: campaigns, one campaign's charts, deploys "
        "(diff, rollback) and one customer's timeline. Binds KAIROS_CONSOLE_HOST:"
        "KAIROS_CONSOLE_PORT (127.0.0.1:6070); sign-in needs KAIROS_CONSOLE_TOKEN or "
        "KAIROS_CONSOLE_USERS_FILE. See docs/console.md.",
    )
    console.set_defaults(handler=_cmd_console)
    sub = console.add_subparsers(dest="console_command")
    hashing = sub.add_parser(
        "hash-password",
        help="print a 'user:hash' line for KAIROS_CONSOLE_USERS_FILE (scrypt)",
        description="Ask for USER's password twice (not echoed) and print the line to add "
        "to the users file.",
    )
    hashing.add_argument("user")
    hashing.add_argument(
        "--stdin", action="store_true", help="read the password from the first line of stdin"
    )
    hashing.set_defaults(handler=_cmd_hash_password)


def _cmd_console(args: argparse.Namespace) -> int:
    from app.console.run import run_console
    from app.settings import load_settings
    from app.worker.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)  # the same redacting formatter as the workers
    return run_console(settings)


def _cmd_hash_password(args: argparse.Namespace) -> int:
    import getpass

    from app.console.auth import hash_password

    user: str = args.user
    if not user or ":" in user or user != user.strip() or "\n" in user:
        print("kairos: USER must be non-empty, without ':' or surrounding spaces", file=sys.stderr)
        return EXIT_USAGE
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {user}: ")
        if getpass.getpass("Again: ") != password:
            print("kairos: the two passwords differ; nothing printed", file=sys.stderr)
            return EXIT_USAGE
    if len(password) < 12:
        print("kairos: use a password of at least 12 characters", file=sys.stderr)
        return EXIT_USAGE
    print(f"{user}:{hash_password(password)}")
    return 0
