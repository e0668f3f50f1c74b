"""``kairos demo``: the embedded product in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import Commands


def add_commands(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="embedded broker + worker + console + synthetic traffic, actions shown live",
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
        "--console-port", type=int, default=6070, help="the console's port (default: 6070)"
    )
    demo.add_argument(
        "--rules", type=Path, default=None, help="rules directory (default: examples)"
    )
    demo.set_defaults(handler=_cmd_demo)


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
            console_port=args.console_port,
        )
    )
