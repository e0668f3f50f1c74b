"""The profile contract in the README names exactly the model's fields, as the model has them.

Producers of ``<prefix>.customers.profile`` read the README's table, not ``schemas/profile.py``:
a field added, renamed, made required or given another default in the model without the
table changing fails here. So does a profile field left undescribed in the JSON Schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas.jsonschema_export import SCHEMA_DIR
from schemas.profile import Consent, CustomerProfile

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| profile field | type | required | default | meaning |"
_CODE = re.compile(r"`([^`]+)`")


def _documented() -> dict[str, tuple[bool, Any]]:
    """``{field: (required, default)}`` from the README's profile table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert HEADER in lines, f"README.md has no profile table starting {HEADER!r}"
    rows: dict[str, tuple[bool, Any]] = {}
    for line in lines[lines.index(HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        field, _type, required, default, _meaning = (c.strip() for c in line.strip("|").split("|"))
        assert required in ("yes", "no"), line
        literal = _CODE.fullmatch(default)
        assert (required == "yes") == (literal is None), f"a default, or none if required: {line}"
        for name in _CODE.findall(field):
            rows[name] = (required == "yes", json.loads(literal[1]) if literal else None)
    return rows


def _model_fields() -> dict[str, tuple[bool, Any]]:
    """``{field: (required, default as JSON)}`` of the profile and its consent."""

    def described(prefix: str, fields: dict[str, FieldInfo]) -> dict[str, tuple[bool, Any]]:
        out = {}
        for name, info in fields.items():
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            out[prefix + name] = (info.is_required(), default)
        return out

    return {
        **described("", CustomerProfile.model_fields),
        **described("consent.", Consent.model_fields),
    }


def test_the_readme_documents_every_profile_field_as_the_model_has_it() -> None:
    documented, model = _documented(), _model_fields()
    assert sorted(documented) == sorted(model), "the README's profile table lists other fields"
    for name, (required, default) in model.items():
        assert documented[name] == (required, default), f"{name}: required/default differ"


def test_every_profile_field_is_described_in_the_json_schema() -> None:
    schema = json.loads((SCHEMA_DIR / "profile.schema.json").read_text(encoding="utf-8"))
    consent = schema["$defs"]["Consent"]["properties"]
    for properties in (schema["properties"], consent):
        undescribed = sorted(n for n, p in properties.items() if not p.get("description"))
        assert not undescribed, f"profile fields without a description: {undescribed}"
