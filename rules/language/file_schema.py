"""The JSON Schema of the rule-file format, generated from :mod:`rules.language.spec`.

Checked in as ``rules/rule-file.schema.json`` so editors (VS Code's YAML extension, JetBrains)
autocomplete keys and flag typos as marketing ops type; a test fails when it drifts from the
models. Point an editor at it with a first line such as::

    # yaml-language-server: $schema=../rule-file.schema.json
"""

from __future__ import annotations

import json
from pathlib import Path

from rules.language.spec import RuleFile

SCHEMA_PATH = Path(__file__).parent.parent / "rule-file.schema.json"


def generate() -> str:
    schema = RuleFile.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Kairos rule file",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(generate(), encoding="utf-8")
    return path
