"""Hypothesis strategies for any message the published JSON Schemas allow.

Producers and channel teams build against ``schemas/jsonschema/``, so the property tests
generate from those very files rather than from hand-written builders: whatever a schema
admits, the worker must decide or dead-letter. Extreme values are included on purpose —
instants from year 1 to 9999 with any offset, numbers of 400 digits or ``1e400``, long
strings, unknown extra fields. (hypothesis-jsonschema does the same in general, but 0.23
no longer runs on current Hypothesis; our schemas need only this subset.)

Values that rules compare against (a flow, a screen, a category) are mixed in, so that
rules fire and state builds up rather than every event being ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema"

#: Strings the example rules and features test for.
_KNOWN_STRINGS = (
    "personal_loan_application",
    "personal_loan_application_completed",
    "mortgage_calculator",
    "mortgage_application",
    "card_activation",
    "salary",
    "transfer_out",
    "card_purchase",
    "loan_disbursement",
    "affluent",
    "private",
    "mass",
    "Europe/Madrid",
    "UTC",
    "Pacific/Kiritimati",
    "RM-1",
)

#: Numbers a JSON number token can spell but no float holds, as raw JSON text.
_EXTREME_NUMBER_TOKENS = ("1e400", "-1e400", "9" * 400, "0.0000000001", "1e-400", "0", "-0.0")


@dataclass(frozen=True)
class RawNumber:
    """A JSON number token written as is (``1e400``), which :func:`json.dumps` cannot write."""

    token: str


def to_json(value: Any) -> bytes:
    """Serialise ``value`` as JSON, writing :class:`RawNumber` and ``Decimal`` unquoted."""
    if isinstance(value, RawNumber):
        return value.token.encode()
    if isinstance(value, Decimal):
        return str(value).encode()
    if isinstance(value, dict):
        items = b",".join(
            json.dumps(str(key)).encode() + b":" + to_json(item) for key, item in value.items()
        )
        return b"{" + items + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(to_json(item) for item in value) + b"]"
    return json.dumps(value).encode()


def _instants() -> st.SearchStrategy[str]:
    offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    recent = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)).map(
        lambda moment: moment.replace(tzinfo=UTC)
    )
    anywhere = st.builds(
        lambda moment, zone: moment.replace(tzinfo=zone),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        offsets,
    )
    edges = st.sampled_from(
        [
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59+00:00",
            "1969-12-31T23:59:59+00:00",
            "2199-12-31T23:59:59+00:00",
        ]
    )
    return st.one_of(recent.map(datetime.isoformat), anywhere.map(datetime.isoformat), edges)


def _numbers(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    floats = st.floats(
        min_value=low,
        exclude_min="exclusiveMinimum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )
    decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4)
    return st.one_of(floats, decimals, st.sampled_from(_EXTREME_NUMBER_TOKENS).map(RawNumber))


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    inside = st.integers(min_value=low, max_value=high)
    return st.one_of(inside, st.sampled_from([0, -1, 10**400]).map(lambda n: RawNumber(str(n))))


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("format") == "date-time":
        return _instants()
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    size = {
        "min_size": schema.get("minLength", 0),
        "max_size": min(schema.get("maxLength", 40), 300),
    }
    return st.one_of(st.sampled_from(_KNOWN_STRINGS), st.text(**size))


def _identifiers(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Ids mostly distinct (a repeated ``event_id`` is a re-delivery, decided once)."""
    if schema.get("type") != "string":
        return from_schema(schema)
    size = {
        "min_size": schema.get("minLength", 0),
        "max_size": min(schema.get("maxLength", 40), 300),
    }
    return st.one_of(st.uuids().map(str), st.text(**size))


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(_EXTREME_NUMBER_TOKENS).map(RawNumber),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def from_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None
) -> st.SearchStrategy[Any]:
    """A strategy for documents valid against ``schema`` (the subset pydantic emits)."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(root["$defs"][name], root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return st.one_of([from_schema(option, root) for option in schema[combinator]])
    kind = schema.get("type")
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        return _integers(schema)
    if kind == "number":
        return _numbers(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), root) if schema.get("items") else _JSON_VALUES
        return st.lists(items, max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {
            name: _identifiers(sub) if name.endswith("_id") else from_schema(sub, root)
            for name, sub in properties.items()
        }
        document = st.fixed_dictionaries(
            {name: fields[name] for name in required},
            optional={name: fields[name] for name in properties if name not in required},
        )
        if schema.get("additionalProperties", True) is False:
            return document
        extras = st.dictionaries(
            st.text(min_size=1, max_size=10).filter(lambda key: key not in properties),
            _JSON_VALUES,
            max_size=2,
        )
        return st.builds(lambda known, extra: {**extra, **known}, document, extras)
    return _JSON_VALUES


def messages_of(file_name: str) -> st.SearchStrategy[Any]:
    """Documents valid against ``schemas/jsonschema/<file_name>``."""
    schema = json.loads((SCHEMA_DIR / file_name).read_text())
    return from_schema(schema)


def variations_of(
    file_name: str, base: dict[str, Any], definition: str | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` (a valid message) with some of its fields replaced by any schema value.

    Documents drawn whole from a schema are mostly refused (one bad field is enough), so
    they seldom reach the rules; a valid message with one or two extreme fields does.
    """
    root = json.loads((SCHEMA_DIR / file_name).read_text())
    schema = root["$defs"][definition] if definition else root
    fields = {
        name: from_schema(sub, root)
        for name, sub in schema.get("properties", {}).items()
        if name not in ("customer_id", "event_type")
    }
    overrides = st.dictionaries(st.sampled_from(sorted(fields)), st.none(), max_size=2).flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] for name in chosen})
    )
    fresh = {"event_id": st.uuids().map(str)} if "event_id" in base else {}
    return st.builds(
        lambda ids, changed: {**base, **ids, **changed}, st.fixed_dictionaries(fresh), overrides
    )
