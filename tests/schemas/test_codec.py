from __future__ import annotations

import json
import zlib

import pytest

from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from schemas.codec import (
    decode_event,
    decode_profile,
    decode_state,
    encode,
    encode_event,
    encode_state,
)
from schemas.errors import InvalidEventError, StateCorruptError
from schemas.events import Transaction
from schemas.profile import CustomerProfile
from schemas.state import CustomerState
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
    assert stored < 0.6 * sum(len(encode(state)) for state in states)


def test_a_state_record_that_does_not_decompress_is_refused_loudly() -> None:
    stored = encode_state(CustomerState(customer_id="C1"))
    with pytest.raises(StateCorruptError, match="does not decompress"):
        decode_state(stored[:-4])


def test_a_zlib_state_record_still_reads() -> None:
    state = CustomerState(customer_id="C1", event_counts={"app_click": 3})
    assert decode_state(b"\x01" + zlib.compress(encode(state), 1)) == state


def test_a_profile_without_updated_at_is_refused_as_a_missing_field() -> None:
    """It could never be ordered against the stored one (README, profile contract)."""
    fields = profile("C1")
    del fields["updated_at"]
    with pytest.raises(InvalidEventError) as caught:
        decode_profile(_raw(fields))
    assert caught.value.error_type == "missing_field"
