"""``kairos worker``: one production worker, configured by ``KAIROS_*`` variables."""

from __future__ import annotations

import argparse

from app.cli.common import Commands


def add_commands(commands: Commands) -> None:
    worker = commands.add_parser("worker", help="run a worker (configured by KAIROS_* variables)")
    worker.set_defaults(handler=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    from app.settings import load_settings
    from app.worker import run

    run(load_settings())
    return 0
