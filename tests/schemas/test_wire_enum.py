"""The wire enums behave as the standard library's StrEnum, only their ``value`` is faster."""

from __future__ import annotations

from enum import StrEnum

import pytest
from pydantic import TypeAdapter

from schemas.actions import Channel
from schemas.decisions import Outcome, Reason
from schemas.feedback import FeedbackStatus
from schemas.wire_enum import WireEnum

WIRE_ENUMS = [Channel, Outcome, Reason, FeedbackStatus]


@pytest.mark.parametrize("enum", WIRE_ENUMS, ids=lambda e: e.__name__)
def test_a_wire_enum_reads_serialises_and_parses_as_a_str_enum(enum: type[WireEnum]) -> None:
    standard = StrEnum(enum.__name__, {m.name: m._value_ for m in enum})  # type: ignore[misc]
    assert [m.name for m in enum] == [m.name for m in standard], "no member added or lost"
    assert "value" not in enum.__members__
    adapter, standard_adapter = TypeAdapter(enum), TypeAdapter(standard)
    for member, twin in zip(enum, standard, strict=True):
        assert member.value == twin.value == member == str(member)
        assert type(member.value) is str
        assert enum(member.value) is member and enum[member.name] is member
        assert adapter.dump_json(member) == standard_adapter.dump_json(twin)
        assert adapter.validate_json(adapter.dump_json(member)) is member
