"""The published wire contract, generated from the models, checked in under ``schemas/jsonschema``.

Two kinds of file, one export (``kairos schemas export``): a JSON Schema per wire model,
which producers and channel teams validate against without Python, and the AsyncAPI
document of every topic (``schemas.asyncapi``), whose payloads reference those files. A test
regenerates them all and fails when a checked-in copy drifts from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas import asyncapi
from schemas.actions import Action
from schemas.capacity import RmReply, RmRequest
from schemas.console_audit import ConsoleAudit
from schemas.conversions import Conversion
from schemas.dead_letter import DeadLetter
from schemas.decisions import Decision
from schemas.deployment import LivePointer, RulesetBundle
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.timers import TimerTick

SCHEMA_DIR = Path(__file__).parent / "jsonschema"

#: Every model a topic carries, by its export name (``<name>.schema.json``).
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
    # internal topics, between the workers: documented for operators, like the rest
    "timer_tick": TimerTick,
    "rm_request": RmRequest,
    "rm_reply": RmReply,
    # the console's audit of customer look-ups
    "console_audit": ConsoleAudit,
}


def generate() -> dict[str, str]:
    """Return ``{file name: text}`` of every contract file, deterministically formatted."""
    files = json_schemas()
    schema_files = {name: _schema_file(name) for name in _MODELS}
    files[asyncapi.ASYNCAPI_FILE] = asyncapi.render(asyncapi.document(schema_files))
    return files


def _schema_file(name: str) -> str:
    return f"{name}.schema.json"


def json_schemas() -> dict[str, str]:
    """Return ``{file name: JSON text}`` of the JSON Schema of every wire model."""
    files: dict[str, str] = {}
    for name, model in _MODELS.items():
        if isinstance(model, TypeAdapter):
            schema = model.json_schema(mode="validation")
        else:
            schema = model.model_json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        files[_schema_file(name)] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every contract file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
