from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pydantic
import pytest

from app.synthetic import (
    FUNNELS,
    SyntheticConfig,
    SyntheticRecord,
    generate_profiles,
    poison_messages,
    traffic,
)
from schemas.codec import decode_event, decode_profile, encode, encode_event
from schemas.errors import InvalidEventError
from schemas.events import AppClick, DropOff, Transaction
from schemas.profile import CustomerProfile

DEFAULTS = SyntheticConfig()


@pytest.fixture(scope="module")
def records() -> list[SyntheticRecord]:
    return list(traffic(DEFAULTS))


@pytest.fixture(scope="module")
def profiles(records: list[SyntheticRecord]) -> dict[str, CustomerProfile]:
    return {r.model.customer_id: r.model for r in records if isinstance(r.model, CustomerProfile)}


def _originals(records: list[SyntheticRecord]) -> list[SyntheticRecord]:
    """Events as they happened: re-deliveries left out."""
    return [r for r in records if r.kind == "event" and r.anomaly != "duplicate"]


def _fingerprint(records: list[SyntheticRecord]) -> list[tuple[str, datetime, str | None, bytes]]:
    return [
        (
            r.kind,
            r.at,
            r.anomaly,
            encode(r.model) if isinstance(r.model, CustomerProfile) else encode_event(r.model),
        )
        for r in records
    ]


# ------------------------------------------------------------------ determinism


def test_the_same_seed_gives_byte_identical_traffic(records: list[SyntheticRecord]) -> None:
    assert _fingerprint(list(traffic(SyntheticConfig()))) == _fingerprint(records)


def test_a_different_seed_gives_different_traffic(records: list[SyntheticRecord]) -> None:
    other = list(traffic(SyntheticConfig(seed=43)))
    assert _fingerprint(other) != _fingerprint(records)
    assert [r.at for r in other[-50:]] != [r.at for r in records[-50:]]


def test_the_config_is_frozen_and_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        DEFAULTS.seed = 1
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(duplicate_rate=1.5)
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(start=datetime(2026, 11, 2, 8))  # naive: event times must be aware
    with pytest.raises(pydantic.ValidationError):
        SyntheticConfig(customers=0)


# ------------------------------------------------------------------ validity and order


def test_every_record_round_trips_through_the_codec(records: list[SyntheticRecord]) -> None:
    for record in records:
        model = record.model
        key = model.customer_id.encode()
        if isinstance(model, CustomerProfile):
            assert record.kind == "profile"
            assert decode_profile(encode(model), key) == model
        else:
            assert record.kind == "event"
            assert decode_event(encode_event(model), key) == model


def test_profiles_come_first_then_events_in_non_decreasing_time(
    records: list[SyntheticRecord],
) -> None:
    kinds = [r.kind for r in records]
    first_event = kinds.index("event")
    assert set(kinds[:first_event]) == {"profile"}
    assert set(kinds[first_event:]) == {"event"}
    assert first_event == DEFAULTS.customers
    assert all(r.at == DEFAULTS.start for r in records[:first_event])
    times = [r.at for r in records]
    assert all(a <= b for a, b in itertools.pairwise(times))


def test_event_times_are_utc_and_inside_the_window(records: list[SyntheticRecord]) -> None:
    end = DEFAULTS.start + timedelta(days=DEFAULTS.days)
    for record in records:
        if record.kind == "event":
            occurred = record.model.occurred_at  # type: ignore[union-attr]
            assert occurred.utcoffset() == timedelta(0)
            assert DEFAULTS.start <= occurred < end
            assert record.at.tzinfo is not None


def test_event_ids_are_unique_except_for_redeliveries(records: list[SyntheticRecord]) -> None:
    ids = [r.model.event_id for r in _originals(records)]  # type: ignore[union-attr]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"evt-{DEFAULTS.seed}-") for i in ids)


# ------------------------------------------------------------------ anomalies


def test_duplicates_repeat_an_earlier_event_with_the_same_id(
    records: list[SyntheticRecord],
) -> None:
    first_seen: dict[str, SyntheticRecord] = {}
    duplicates = 0
    for record in records:
        if record.kind != "event":
            continue
        event_id = record.model.event_id  # type: ignore[union-attr]
        if record.anomaly == "duplicate":
            duplicates += 1
            original = first_seen[event_id]  # the original was produced before
            assert record.model == original.model
            assert record.at > original.at
        else:
            assert event_id not in first_seen
            first_seen[event_id] = record
    assert duplicates >= 5  # ~1 % of ~2,500 events


def test_late_events_are_produced_after_they_happened(records: list[SyntheticRecord]) -> None:
    late = [r for r in records if r.anomaly == "late"]
    assert len(late) >= 5
    for record in late:
        occurred = record.model.occurred_at  # type: ignore[union-attr]
        assert occurred < record.at <= occurred + DEFAULTS.max_lateness
    on_time = [r for r in records if r.kind == "event" and r.anomaly is None]
    assert all(r.at == r.model.occurred_at for r in on_time)  # type: ignore[union-attr]


def test_anomalies_can_be_switched_off() -> None:
    config = SyntheticConfig(customers=30, duplicate_rate=0, late_rate=0)
    assert all(r.anomaly is None for r in traffic(config))


# ------------------------------------------------------------------ the customer base


def test_profiles_are_believable(profiles: dict[str, CustomerProfile]) -> None:
    assert list(profiles) == [f"C{i:06d}" for i in range(1, DEFAULTS.customers + 1)]
    assert list(profiles.values()) == generate_profiles(DEFAULTS)
    assert Counter(p.tier for p in profiles.values()) == {
        "mass": 160,
        "affluent": 34,
        "private": 6,
    }
    for p in profiles.values():
        ZoneInfo(p.timezone)
        assert p.language in {"es", "en", "pt", "de"}
        if p.tier == "mass":
            assert p.rm_id is None
            assert not p.consent.rm
        else:
            assert p.rm_id is not None and p.rm_id.startswith("RM")
            assert p.branch_id is not None and p.branch_id.startswith("BR")
    share = Counter[str]()
    for p in profiles.values():
        share.update(p.tags)
        share["sms"] += p.consent.sms
        share["opt_out"] += p.marketing_opt_out
    assert 110 <= share["sms"] <= 170
    assert 1 <= share["opt_out"] <= 25
    assert share["student"] and share["senior"] and share["homeowner"]


# ------------------------------------------------------------------ demo scenarios


def test_the_defaults_contain_the_demo_scenarios(
    records: list[SyntheticRecord], profiles: dict[str, CustomerProfile]
) -> None:
    events = [r.model for r in _originals(records)]
    drops = [e for e in events if isinstance(e, DropOff)]
    loan_drops = [d for d in drops if d.flow == "personal_loan_application" and d.step >= 3]
    tx = [e for e in events if isinstance(e, Transaction)]
    big_salaries = [t for t in tx if t.category == "salary" and t.amount >= 10_000]
    big_outflows = [
        t
        for t in tx
        if t.category == "transfer_out"
        and t.amount >= 5_000
        and (t.counterparty or "").startswith("OTHERBANK ")
    ]
    clicks = [e for e in events if isinstance(e, AppClick)]
    mortgage_views = [c for c in clicks if c.screen == "mortgage_calculator"]

    assert len(loan_drops) >= 24
    assert any(profiles[d.customer_id].tier != "mass" for d in loan_drops)
    assert len(big_salaries) >= 24
    assert all(profiles[t.customer_id].tier != "mass" for t in big_salaries)
    assert len(big_outflows) >= 5
    assert len(mortgage_views) >= 10
    assert {t.category for t in tx} >= {
        "salary",
        "card_purchase",
        "transfer_in",
        "transfer_out",
        "loan_disbursement",
    }
    assert all(t.direction == "credit" for t in tx if t.category in {"salary", "transfer_in"})
    assert {c.platform for c in clicks} == {"ios", "android", "web"}
    assert all(c.session_id for c in clicks)


def test_funnels_drop_off_or_complete_consistently(records: list[SyntheticRecord]) -> None:
    events = [r.model for r in _originals(records)]
    drops = [e for e in events if isinstance(e, DropOff)]
    assert {d.flow for d in drops} == set(FUNNELS)
    for d in drops:
        assert d.steps_total == len(FUNNELS[d.flow].steps)
        assert 1 <= d.step <= d.steps_total
        assert d.reason
    completed = [e for e in events if isinstance(e, AppClick) and e.screen.endswith("_completed")]
    loans_done = {e.customer_id for e in completed if e.screen.startswith("personal_loan")}
    paid_out = {
        e.customer_id
        for e in events
        if isinstance(e, Transaction) and e.category == "loan_disbursement"
    }
    assert loans_done
    assert len(loans_done & paid_out) >= len(loans_done) // 2  # late ones fall past the window


def test_long_windows_pay_salaries_on_the_calendar() -> None:
    config = SyntheticConfig(customers=15, days=40, duplicate_rate=0, late_rate=0)
    profiles = {p.customer_id: p for p in generate_profiles(config)}
    salaries = [
        r.model
        for r in traffic(config)
        if isinstance(r.model, Transaction) and r.model.category == "salary"
    ]
    per_customer = Counter(s.customer_id for s in salaries)
    assert per_customer and max(per_customer.values()) <= 2
    for s in salaries:
        local = s.occurred_at.astimezone(ZoneInfo(profiles[s.customer_id].timezone))
        assert 24 <= local.day <= 28


# ------------------------------------------------------------------ poison


def test_poison_messages_are_each_rejected_by_the_codec() -> None:
    messages = list(poison_messages(random.Random(7)))
    assert messages == list(poison_messages(random.Random(7)))
    kinds = []
    for key, raw in messages:
        with pytest.raises(InvalidEventError) as caught:
            decode_event(raw, key)
        assert caught.value.raw == raw
        kinds.append(caught.value.error_type)
    assert kinds == [
        "malformed_json",
        "missing_field",
        "invalid_field",
        "unknown_event_type",
        "missing_event_type",
        "key_mismatch",
    ]
    assert b"atm_withdrawal" in messages[3][1]
    assert b'"lots"' in messages[2][1]


def test_the_start_may_be_given_in_any_offset() -> None:
    madrid = datetime(2026, 11, 2, 9, 0, tzinfo=ZoneInfo("Europe/Madrid"))
    config = SyntheticConfig(customers=5, start=madrid, days=0.25)
    first = next(traffic(config))
    assert first.at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    assert first.at.utcoffset() == timedelta(0)
