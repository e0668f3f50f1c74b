from __future__ import annotations

import json
import zlib
from typing import Literal

import pytest
import zstandard
from pydantic import ValidationError

from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from schemas.codec import (
    STATE_DICTIONARY_FILES,
    STATE_FORMAT,
    decode_event,
    decode_profile,
    decode_state,
    encode,
    encode_event,
    encode_state,
    state_json,
)
from schemas.errors import InvalidEventError, StateCorruptError
from schemas.events import Transaction
from schemas.profile import CustomerProfile
from schemas.state import STATE_VERSION, CustomerState, state_view
from testkit.factories import click, drop_off, profile, transaction


def _raw(value: dict[str, object]) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("builder", [click, drop_off, transaction])
def test_every_event_type_round_trips(builder) -> None:  # type: ignore[no-untyped-def]
    original = builder("C1")
    event = decode_event(_raw(original), b"C1")
    assert event.event_type == original["event_type"]
    assert json.loads(encode_event(event))["event_id"] == original["event_id"]


def test_unknown_fields_are_kept_for_forward_compatibility() -> None:
    event = decode_event(_raw(transaction("C1", channel_hint="atm", nested={"a": 1})))
    assert event.model_extra == {"channel_hint": "atm", "nested": {"a": 1}}
    assert json.loads(encode_event(event))["nested"] == {"a": 1}


def test_amount_is_an_exact_decimal() -> None:
    event = decode_event(_raw(transaction("C1", amount="10000.10")))
    assert isinstance(event, Transaction)
    assert str(event.amount) == "10000.10"


@pytest.mark.parametrize(
    ("raw", "error_type", "fragment"),
    [
        (b"{not json", "malformed_json", "Invalid JSON"),
        (
            _raw({**click("C1"), "event_type": "atm_withdrawal"}),
            "unknown_event_type",
            "atm_withdrawal",
        ),
        (
            _raw({k: v for k, v in click("C1").items() if k != "event_type"}),
            "missing_event_type",
            "event_type",
        ),
        (
            _raw({k: v for k, v in drop_off("C1").items() if k != "customer_id"}),
            "missing_field",
            "customer_id",
        ),
        (_raw(transaction("C1", amount="lots")), "invalid_field", "amount"),
        (_raw(transaction("C1", amount="-5")), "invalid_field", "greater than 0"),
        (_raw(transaction("C1", currency="euro")), "invalid_field", "currency"),
        (_raw(click("C1", occurred_at="2026-11-02T10:00:00")), "invalid_field", "timezone"),
        (_raw(drop_off("C1", step=0)), "invalid_field", "step"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(raw: bytes, error_type: str, fragment: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode_event(raw)
    assert caught.value.error_type == error_type
    assert fragment in caught.value.reason
    assert caught.value.raw == raw


def test_key_must_be_the_customer_id() -> None:
    with pytest.raises(InvalidEventError) as caught:
        decode_event(_raw(click("C1")), b"C2")
    assert caught.value.error_type == "key_mismatch"


def test_profile_rejects_an_unknown_timezone() -> None:
    with pytest.raises(InvalidEventError, match="Mars/Olympus"):
        decode_profile(_raw(profile("C1", timezone="Mars/Olympus")))


def test_consent_defaults_to_no() -> None:
    parsed = decode_profile(
        _raw({"customer_id": "C1", "updated_at": "2026-11-02T10:00:00Z", "tier": "mass"})
    )
    assert (parsed.consent.sms, parsed.consent.push, parsed.consent.rm) == (False, False, False)


def _month_of_states() -> list[CustomerState]:
    """States as a month of seeded traffic leaves them (example pack, offline engine)."""
    replay = Replay(load_ruleset(EXAMPLE_RULES))
    for record in traffic(SyntheticConfig(seed=3, customers=20, days=30)):
        if isinstance(record.model, CustomerProfile):
            replay.profile(record.model)
        else:
            replay.event(record.model)
    return list(replay.states.values())


def test_state_round_trips_compressed_and_older_plain_records_still_read() -> None:
    states = _month_of_states()
    for state in states:
        assert decode_state(encode_state(state)) == state
        assert decode_state(encode(state)) == state  # what earlier releases wrote
    stored = sum(len(encode_state(state)) for state in states)
    assert stored < 0.35 * sum(len(encode(state)) for state in states)


#: One small state, and the record each release wrote for it, byte for byte: a record written
#: by any release must read back for as long as a changelog may hold it.
_OLD_STATE = CustomerState.model_validate(
    {
        "customer_id": "C1",
        "event_counts": {"app_click": 3},
        "last_seen": {"app_click": "2026-11-02T10:00:00Z"},
        "contacts": [{"channel": "push", "rule_id": "r1", "at": "2026-11-02T10:00:00Z"}],
    }
)
#: The same state as state version 1 wrote it: contacts as objects.
_VERSION_1_JSON = (
    b'{"state_version":1,"customer_id":"C1","profile":null,"event_counts":{"app_click":3},'
    b'"last_seen":{"app_click":"2026-11-02T10:00:00Z"},"last_screen":null,"watermark":null,'
    b'"recent_event_ids":[],"features":{},"timers":[],"rules":{},"contacts":[{"channel":"push",'
    b'"rule_id":"r1","at":"2026-11-02T10:00:00Z","ref":null,"status":"sent","status_at":null}],'
    b'"goals":[],"unreachable":{},"contacts_sent":0,"last_contact_at":null,"recent_decisions":[]}'
)
_RECORDS_BY_RELEASE = {
    "plain JSON": _VERSION_1_JSON,
    "0x01 zlib": b"\x01" + zlib.compress(_VERSION_1_JSON, 1),
    "0x02 zstd level 1": bytes.fromhex(
        "0228b52ffd60b600dd070026d02f1e6087da066827686d336ec4500ce49be88f840083a7851abc5b1901"
        "009c0b260029002600ad8d25d49a8d7c59abe93d974ab03d5e7e047e4728b4c960cd2dbd9cbb32c59b0d"
        "948dcd47022977b1c8d86c3cd8740263ce983367a06008e710020aa670cd64d48ceb2501b82f925a091d"
        "071eb97367afe076fcbe521515e988e1ce9db095a5d57693a1fa2541ee9cdb1a33f17230dc19a1506b06"
        "c9c17067658a554a843994ab00150973b52d64062f87a411bd35f9776e8dcd89dc97c6970715007a2ba0"
        "4481966570b08942b4cc6272428c8b4461778628c9139a65c0dc0603981a4e2719f464e7e36168c89978"
        "805517a3aa68efbb6906"
    ),
    "0x03 zstd, dictionary 1": bytes.fromhex(
        "0328b52ffd67bca47353b6001d030070313331313072313073223a5b5d7d20fc1a44a2cf6d75c0c82f51"
        "c442c89973f50e506dc92e9219c0d43d0b5e355b472d50ba14bb8126e19c914e2dabd94997137a623313"
        "374d1c0a5cd6f2b2e7d8d6c2e00df6d5599a195f31dcb25f2a4647386d0e381c6567"
    ),
    "0x03 zstd, dictionary 1, state version 2": bytes.fromhex(
        "0328b52ffd67bca4735382001d0300c03231333131305b7231222c2c6e756c6c5d3073223a5b5d7d1dfce6"
        "3331aa663d80e1e3de44343f14b30c4f22733521e74db1d734c95819d9fa65a57ce81c424f66a6b569a250"
        "604b2dcb91c4b6e60d6f24afcecfccf28a882cfb618d34a37d9c0c05b21b518b"
    ),
}


@pytest.mark.parametrize("release", list(_RECORDS_BY_RELEASE))
def test_every_state_format_ever_written_still_reads(release: str) -> None:
    """A changed or regenerated dictionary fails here: its records would no longer read."""
    raw = _RECORDS_BY_RELEASE[release]
    state = decode_state(raw)
    assert state == _OLD_STATE and state.state_version == STATE_VERSION  # read as the newest
    assert state_json(raw) == (encode(_OLD_STATE) if "version 2" in release else _VERSION_1_JSON)


def test_the_state_is_written_in_the_newest_format() -> None:
    stored = encode_state(_OLD_STATE)
    assert stored[:1] == STATE_FORMAT == b"\x03"
    assert stored == _RECORDS_BY_RELEASE["0x03 zstd, dictionary 1, state version 2"]
    assert b'"contacts":[["push","r1","2026-11-02T10:00:00Z",null,"sent",null]]' in state_json(
        stored
    )


def test_a_release_that_knows_an_earlier_version_refuses_a_newer_record() -> None:
    """Read by version 1's model, a version 2 record fails validation: refused, not misread."""

    class Version1(CustomerState):
        state_version: Literal[1] = 1  # type: ignore[assignment]

    with pytest.raises(ValidationError, match="state_version"):
        Version1.model_validate_json(state_json(encode_state(_OLD_STATE)))


def test_each_format_byte_names_its_own_dictionary() -> None:
    """The frame names its dictionary too: a record and a dictionary never get mixed up."""
    ids = {
        kind: zstandard.ZstdCompressionDict(path.read_bytes()).dict_id()
        for kind, path in STATE_DICTIONARY_FILES.items()
    }
    assert len(set(ids.values())) == len(ids)
    stored = encode_state(_OLD_STATE)
    assert zstandard.get_frame_parameters(stored[1:]).dict_id == ids[stored[:1]]


def test_a_state_record_that_does_not_decompress_is_refused_loudly() -> None:
    stored = encode_state(CustomerState(customer_id="C1"))
    with pytest.raises(StateCorruptError, match="does not decompress"):
        decode_state(stored[:-4])


def test_a_damaged_state_record_is_refused_not_misread() -> None:
    """The frame's checksum catches a flipped bit that would still decompress."""
    stored = bytearray(encode_state(_OLD_STATE))
    stored[len(stored) // 2] ^= 0x01
    with pytest.raises(StateCorruptError):
        decode_state(bytes(stored))


def test_a_state_record_that_does_not_validate_is_refused_as_corrupt() -> None:
    with pytest.raises(StateCorruptError, match="does not validate"):
        decode_state(b'{"customer_id": 5}')
    with pytest.raises(StateCorruptError, match="does not validate"):
        decode_state(b"{not json")


def test_a_state_record_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(StateCorruptError, match="unknown format"):
        decode_state(b"\x7f" + encode_state(_OLD_STATE)[1:])


def test_a_profile_without_updated_at_is_refused_as_a_missing_field() -> None:
    """It could never be ordered against the stored one (README, profile contract)."""
    fields = profile("C1")
    del fields["updated_at"]
    with pytest.raises(InvalidEventError) as caught:
        decode_profile(_raw(fields))
    assert caught.value.error_type == "missing_field"


def test_people_see_a_version_1_record_field_for_field_as_it_was_stored() -> None:
    """Contacts and decision notes are stored as arrays now; the view names every field."""
    v1 = json.loads(_VERSION_1_JSON)
    v1["recent_decisions"] = [
        {
            "decision_id": "dec_1",
            "rule_id": "r1",
            "rule_version": 3,
            "outcome": "sent",
            "reason_code": "rule_matched",
            "channel": "push",
            "at": "2026-11-02T10:00:00Z",
        }
    ]
    v1["contacts"][0].update(ref="a1b2c3", status="opened", status_at="2026-11-02T10:05:00Z")
    state = decode_state(json.dumps(v1).encode())
    stored = json.loads(state_json(encode_state(state)))
    assert stored["contacts"] == [
        ["push", "r1", "2026-11-02T10:00:00Z", "a1b2c3", "opened", "2026-11-02T10:05:00Z"]
    ]
    assert stored["recent_decisions"][0][:2] == ["dec_1", "r1"]
    assert state_view(state) == {**v1, "state_version": STATE_VERSION}
    assert decode_state(encode_state(state)) == state
