"""``kairos schemas``: wire contract tooling (the JSON Schema files, the AsyncAPI document)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import Commands


def add_commands(commands: Commands) -> None:
    from schemas.jsonschema_export import SCHEMA_DIR

    schemas = commands.add_parser("schemas", help="wire contract tooling").add_subparsers(
        dest="schemas_command", required=True
    )
    export = schemas.add_parser(
        "export", help="write the JSON Schema files and the AsyncAPI document of the topics"
    )
    export.add_argument("--directory", type=Path, default=SCHEMA_DIR)
    export.set_defaults(handler=_cmd_schemas_export)


def _cmd_schemas_export(args: argparse.Namespace) -> int:
    from schemas.jsonschema_export import write

    for path in write(args.directory):
        print(path)
    return 0
