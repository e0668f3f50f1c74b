"""Bytes in, models out — and back. Pydantic owns the bytes on both sides.

Parsing goes straight from bytes (``validate_json``) rather than ``json.loads`` then
validate: one pass, and JSON syntax errors and schema errors come out as one error type
that the dead-letter path can explain.
"""

from __future__ import annotations

import zlib
from pathlib import Path
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


#: First byte of a stored state: how the rest is encoded. Every format ever written stays
#: readable: a worker restores records written by earlier releases from the changelog.
#: Plain JSON (the first releases) starts with ``{``.
_STATE_ZLIB = b"\x01"
_STATE_ZSTD = b"\x02"
#: Zstandard with the trained dictionary :data:`STATE_DICTIONARY_FILES` ``[b"\x03"]``.
_STATE_ZSTD_DICT_1 = b"\x03"
#: The format :func:`encode_state` writes.
STATE_FORMAT = _STATE_ZSTD_DICT_1
_ZSTD_LEVEL = 1
#: Shipped dictionaries by the format byte that names them. A dictionary is never changed
#: once released (records written with it would no longer read): a better one is a new
#: file under a new format byte, and the old one stays for as long as its records may.
STATE_DICTIONARY_DIR = Path(__file__).resolve().parent / "state_dictionaries"
STATE_DICTIONARY_FILES = {_STATE_ZSTD_DICT_1: STATE_DICTIONARY_DIR / "1.zdict"}
_zstd_decompressor = zstandard.ZstdDecompressor()
_KNOWN_STATE_FORMATS = {b"{", _STATE_ZLIB, _STATE_ZSTD, *STATE_DICTIONARY_FILES}


def _load_dictionary(path: Path) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(path.read_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT)


_dictionaries = {kind: _load_dictionary(path) for kind, path in STATE_DICTIONARY_FILES.items()}
_dict_decompressors = {
    kind: zstandard.ZstdDecompressor(dict_data=d) for kind, d in _dictionaries.items()
}
_state_compressor = zstandard.ZstdCompressor(
    level=_ZSTD_LEVEL, dict_data=_dictionaries[STATE_FORMAT], write_checksum=True
)


def encode_state(state: CustomerState) -> bytes:
    """Serialise a customer state for the table: JSON, Zstandard with a trained dictionary.

    The state is written to RocksDB and to its changelog on every checkpoint that changed
    it and read back on every restore, so its size and its encoding cost are paid many
    times. Its JSON (~4 KB for a month) is mostly the same keys, rule ids, enum values and
    timestamp prefixes in every customer: a 32 KB dictionary trained on such states
    (``bench/state_size.py --train-dictionary``) holds them once, so each record only
    stores what is its own — ~0.9 KB instead of ~1.6 KB with plain Zstandard, for a little
    less CPU (measured in ``bench/state_size.py``; the figures are in its output). Level 1:
    higher levels gain ~4 % for ~30 % more CPU. The frame carries a checksum (4 bytes) so a
    damaged record is refused as corrupt instead of decoding into a wrong state. The JSON
    itself stays pydantic's: a hand-written serializer or a trusted constructor in Python
    measured slower than pydantic-core, and JSON keeps :func:`state_json` cheap.
    """
    return STATE_FORMAT + _state_compressor.compress(state.__pydantic_serializer__.to_json(state))


def state_json(raw: bytes) -> bytes:
    """The JSON of a stored state, decompressed if need be: cheap to search before decoding."""
    kind = raw[:1]
    try:
        decompressor = _dict_decompressors.get(kind)
        if decompressor is not None:
            return decompressor.decompress(raw[1:])
        if kind == _STATE_ZSTD:
            return _zstd_decompressor.decompress(raw[1:])
        if kind == _STATE_ZLIB:
            return zlib.decompress(raw[1:])
    except (zstandard.ZstdError, zlib.error) as exc:
        raise StateCorruptError(f"state record does not decompress: {exc}") from exc
    return raw


def decode_state(raw: bytes) -> CustomerState:
    """Read a state record written by this or an earlier release.

    Validated, not trusted: pydantic-core parses and checks a month's state in ~45 us, less
    than a constructor that skips validation costs in Python; and a record that does not
    validate raises :class:`StateCorruptError`, like one that does not decompress.
    """
    if raw[:1] not in _KNOWN_STATE_FORMATS:
        raise StateCorruptError(f"state record of unknown format {raw[:1]!r}")
    document = state_json(raw)
    try:
        return CustomerState.model_validate_json(document)
    except ValidationError as exc:
        raise StateCorruptError(f"state record does not validate: {_describe(exc)[1]}") from exc


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
