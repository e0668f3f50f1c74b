"""``kairos ops``: the monitoring files, made for the deployment they are installed in.

Prometheus rule files take no variables, so what differs between deployments is written
into a copy: ``kairos ops alerts`` renders the alert rules (and their unit tests) with
their runbook links on ``KAIROS_RUNBOOK_BASE_URL`` (see :mod:`app.runbooks`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import Commands


def add_commands(commands: Commands) -> None:
    ops = commands.add_parser("ops", help="monitoring files for this deployment").add_subparsers(
        dest="ops_command", required=True
    )
    alerts = ops.add_parser(
        "alerts",
        help="write alerts.yml and alerts.test.yml with runbook links on KAIROS_RUNBOOK_BASE_URL",
    )
    alerts.add_argument(
        "--output-dir", type=Path, required=True, help="directory to write the rendered files to"
    )
    alerts.add_argument(
        "--source",
        type=Path,
        default=None,
        help="directory of the shipped files (default: ops/prometheus of this source tree)",
    )
    alerts.set_defaults(handler=_cmd_ops_alerts)


def _cmd_ops_alerts(args: argparse.Namespace) -> int:
    from app.runbooks import SHIPPED, render_directory
    from app.settings import load_settings

    base_url = str(load_settings().runbook_base_url)
    for path in render_directory(args.output_dir, base_url, source=args.source or SHIPPED):
        print(path)
    print(f"runbook links on {base_url}")
    return 0
