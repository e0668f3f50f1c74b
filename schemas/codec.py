"""Bytes in, models out — and back. Pydantic owns the bytes on both sides.

Parsing goes straight from bytes (``validate_json``) rather than ``json.loads`` then
validate: one pass, and JSON syntax errors and schema errors come out as one error type
that the dead-letter path can explain.
"""

from __future__ import annotations

import zlib
from typing import Any, TypeVar

import zstandard
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.errors import InvalidEventError, StateCorruptError
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile
from schemas.state import CustomerState

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_ModelT = TypeVar("_ModelT", bound=BaseModel)

#: pydantic error types that mean "this is not even an event we know", for the DLQ.
_ERROR_TYPES = {
    "json_invalid": "malformed_json",
    "union_tag_invalid": "unknown_event_type",
    "union_tag_not_found": "missing_event_type",
    "missing": "missing_field",
}


def _describe(error: ValidationError) -> tuple[str, str]:
    """Turn a pydantic error into (error_type, one readable sentence)."""
    details = error.errors(include_url=False, include_input=False)
    parts = []
    for item in details[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    first_type = details[0]["type"] if details else "invalid"
    error_type = _ERROR_TYPES.get(first_type, "invalid_field")
    more = f" (+{len(details) - 5} more)" if len(details) > 5 else ""
    return error_type, "; ".join(parts) + more


def _check_key(key: bytes | None, customer_id: str, raw: bytes) -> None:
    """The key must be the customer id, or co-partitioning with the state breaks."""
    if key is not None and key.decode("utf-8", errors="replace") != customer_id:
        raise InvalidEventError(
            "message key does not match the customer_id field (neither is repeated here: "
            "see the record's key and raw bytes); producers must key every message by "
            "customer_id",
            raw,
            error_type="key_mismatch",
        )


_KeyedT = TypeVar("_KeyedT", Event, CustomerProfile, Feedback)


def _decode_keyed(adapter: TypeAdapter[_KeyedT], raw: bytes, key: bytes | None) -> _KeyedT:
    """Parse and validate one keyed input, or raise :class:`InvalidEventError`."""
    try:
        value = adapter.validate_json(raw)
    except ValidationError as exc:
        error_type, reason = _describe(exc)
        raise InvalidEventError(reason, raw, error_type=error_type) from exc
    _check_key(key, value.customer_id, raw)
    return value


_PROFILE_ADAPTER: TypeAdapter[CustomerProfile] = TypeAdapter(CustomerProfile)
_FEEDBACK_ADAPTER: TypeAdapter[Feedback] = TypeAdapter(Feedback)


def decode_event(raw: bytes, key: bytes | None = None) -> Event:
    """Parse and validate an input event, or raise :class:`InvalidEventError`."""
    return _decode_keyed(EVENT_ADAPTER, raw, key)


def decode_profile(raw: bytes, key: bytes | None = None) -> CustomerProfile:
    """Parse and validate a profile update, or raise :class:`InvalidEventError`."""
    return _decode_keyed(_PROFILE_ADAPTER, raw, key)


def decode_feedback(raw: bytes, key: bytes | None = None) -> Feedback:
    """Parse and validate a channel's feedback, or raise :class:`InvalidEventError`."""
    return _decode_keyed(_FEEDBACK_ADAPTER, raw, key)


#: First byte of a stored state: how the rest is encoded. Plain JSON (earlier releases)
#: starts with ``{``.
_STATE_ZLIB = b"\x01"
_STATE_ZSTD = b"\x02"
_ZSTD_LEVEL = 1
_zstd_compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
_zstd_decompressor = zstandard.ZstdDecompressor()


def encode_state(state: CustomerState) -> bytes:
    """Serialise a customer state for the table: JSON, Zstandard-compressed.

    The state is written to RocksDB and to its changelog on every update and read back on
    every restore, so its size is paid many times; its JSON is repetitive (keys, timestamps,
    rule ids) and compresses from ~3.6 KB to ~1.5 KB for a month's state. Zstandard level 1
    gives zlib level 1's ratio for a quarter of the CPU (~12 us instead of ~46 us, ~5 us to
    decompress instead of ~16 us): compression ran at 13.6 % of a worker's samples with zlib.
    """
    return _STATE_ZSTD + _zstd_compressor.compress(state.__pydantic_serializer__.to_json(state))


def state_json(raw: bytes) -> bytes:
    """The JSON of a stored state, decompressed if need be: cheap to search before decoding."""
    kind = raw[:1]
    try:
        if kind == _STATE_ZSTD:
            return _zstd_decompressor.decompress(raw[1:])
        if kind == _STATE_ZLIB:
            return zlib.decompress(raw[1:])
    except (zstandard.ZstdError, zlib.error) as exc:
        raise StateCorruptError(f"state record does not decompress: {exc}") from exc
    return raw


def decode_state(raw: bytes) -> CustomerState:
    """Read a state record written by this or an earlier release (plain JSON)."""
    return CustomerState.model_validate_json(state_json(raw))


def encode(model: BaseModel) -> bytes:
    """Serialise any wire model to compact UTF-8 JSON."""
    return model.__pydantic_serializer__.to_json(model)


def encode_event(event: Event) -> bytes:
    """Serialise an input event (used by producers such as the synthetic generator)."""
    return EVENT_ADAPTER.dump_json(event)


def to_jsonable(model: BaseModel) -> dict[str, Any]:
    """A plain dict, JSON types only, for logs and HTTP answers."""
    return model.model_dump(mode="json")


def parse_as(model: type[_ModelT], raw: bytes) -> _ModelT:
    """Parse a trusted record of ``model`` (our own output topics)."""
    return model.model_validate_json(raw)
