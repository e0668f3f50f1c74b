"""JSON Schema files generated from the wire models, checked in under ``schemas/jsonschema``.

Producers and channel teams validate against these without Python; a test regenerates
them and fails when the checked-in copies drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.actions import Action
from schemas.conversions import Conversion
from schemas.dead_letter import DeadLetter
from schemas.decisions import Decision
from schemas.deployment import LivePointer, RulesetBundle
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile

SCHEMA_DIR = Path(__file__).parent / "jsonschema"

_MODELS: dict[str, type[BaseModel] | TypeAdapter[Any]] = {
    "event": TypeAdapter(Event),
    "profile": CustomerProfile,
    "feedback": Feedback,
    "action": Action,
    "decision": Decision,
    "conversion": Conversion,
    "dead_letter": DeadLetter,
    "ruleset_bundle": RulesetBundle,
    "live_pointer": LivePointer,
}


def generate() -> dict[str, str]:
    """Return ``{file name: JSON text}`` for every wire model, deterministically formatted."""
    files: dict[str, str] = {}
    for name, model in _MODELS.items():
        if isinstance(model, TypeAdapter):
            schema = model.json_schema(mode="validation")
        else:
            schema = model.model_json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the schema files; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
