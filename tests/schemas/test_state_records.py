"""Contacts and decision notes stored as arrays (state version 2), over any values.

The arrays are read by position; a field out of place would read back as another (a
status as a rule id) or not at all. Hypothesis draws the ugly values: dates at both ends
of the calendar in any fixed offset, empty and unicode ids, every status and reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.policy import CONTACT_HISTORY
from schemas.actions import Channel
from schemas.codec import decode_state, encode_state, state_json
from schemas.decisions import Outcome, Reason
from schemas.errors import StateCorruptError
from schemas.feedback import FeedbackStatus
from schemas.state import (
    RECENT_DECISIONS,
    ContactRecord,
    CustomerState,
    DecisionNote,
    state_view,
)

_ZONES = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    ).map(lambda d: timedelta(minutes=d // timedelta(minutes=1))),
)
_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
)
_TEXT = st.text(max_size=12)
_CONTACTS = st.builds(
    ContactRecord,
    channel=st.sampled_from(Channel),
    rule_id=_TEXT,
    at=_TIMES,
    ref=st.none() | _TEXT,
    status=st.sampled_from(["sent", "ignored", *FeedbackStatus]),
    status_at=st.none() | _TIMES,
)
_NOTES = st.builds(
    DecisionNote,
    decision_id=_TEXT,
    rule_id=_TEXT,
    rule_version=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    outcome=st.sampled_from(Outcome),
    reason_code=st.sampled_from(Reason),
    channel=st.none() | st.sampled_from(Channel),
    at=_TIMES,
)


@given(
    contacts=st.lists(_CONTACTS, max_size=CONTACT_HISTORY),
    notes=st.lists(_NOTES, max_size=RECENT_DECISIONS),
)
def test_any_contacts_and_notes_read_back_as_written_in_either_version(
    contacts: list[ContactRecord], notes: list[DecisionNote]
) -> None:
    state = CustomerState(customer_id="C1", contacts=contacts, recent_decisions=notes)
    assert decode_state(encode_state(state)) == state
    # What people see is version 1's record, field for field: it reads back the same too.
    view = state_view(state)
    stored = json.loads(state_json(encode_state(state)))
    assert len(stored["contacts"]) == len(view["contacts"])
    assert all(len(row) == len(ContactRecord._fields) for row in stored["contacts"])
    assert decode_state(json.dumps({**view, "state_version": 1}).encode()) == state


def test_a_contact_written_before_feedback_reads_with_its_defaults() -> None:
    """Releases before feedback wrote a contact without ``ref``, ``status``, ``status_at``."""
    raw = (
        b'{"state_version":1,"customer_id":"C-SECRET-1","contacts":[{"channel":"sms",'
        b'"rule_id":"r1","at":"2026-11-02T10:00:00+01:00"}]}'
    )
    (contact,) = decode_state(raw).contacts
    assert (contact.channel, contact.rule_id, contact.ref) == (Channel.SMS, "r1", None)
    assert (contact.status, contact.status_at) == ("sent", None)
    assert contact.at == datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "contact",
    [
        b'{"channel":"sms","rule_id":"r1"}',  # no time
        b'["sms","r1"]',  # the same, as an array
        b'["sms","r1","2026-11-02T10:00:00Z",null,"sent",null,"one too many"]',
        b'["fax","r1","2026-11-02T10:00:00Z"]',
        b'["sms","r1","2026-11-02T10:00:00"]',  # no offset: not an instant
    ],
)
def test_a_damaged_contact_is_refused_as_corrupt_without_the_customer_id(contact: bytes) -> None:
    raw = b'{"state_version":2,"customer_id":"C-SECRET-1","contacts":[' + contact + b"]}"
    with pytest.raises(StateCorruptError, match="contacts") as refused:
        decode_state(raw)
    assert "C-SECRET-1" not in str(refused.value)
