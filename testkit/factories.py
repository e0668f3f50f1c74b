"""Builders of wire-format dicts for tests: valid by default, any field overridable."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

_ids = itertools.count(1)


def now_iso(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + offset).isoformat()


def daytime_zone() -> str:
    """An IANA zone where it is around noon now: tests that send "now" stay out of quiet hours."""
    offset = 12 - datetime.now(UTC).hour  # hours east of UTC that put local time at ~12:00
    offset = (offset + 12) % 24 - 12 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/ names invert the sign


def profile(customer_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer_id": customer_id,
        "updated_at": now_iso(timedelta(seconds=-60)),
        "tier": "mass",
        "tags": [],
        "lifecycle_stage": "active",
        "consent": {"sms": True, "push": True, "rm": False},
        "marketing_opt_out": False,
        "push_enabled": True,
        "timezone": "Europe/Madrid",
        "language": "es",
    }
    return {**base, **overrides}


def _event(event_type: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": f"evt-{event_type}-{next(_ids)}",
        "customer_id": customer_id,
        "occurred_at": now_iso(),
        "schema_version": 1,
        **fields,
    }


def drop_off(customer_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {"flow": "personal_loan_application", "step": 3, "steps_total": 5, **overrides}
    return _event("drop_off", customer_id, **fields)


def transaction(customer_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "amount": "12000.00",
        "currency": "EUR",
        "direction": "credit",
        "category": "salary",
        **overrides,
    }
    return _event("transaction", customer_id, **fields)


def click(customer_id: str, **overrides: Any) -> dict[str, Any]:
    fields = {"screen": "mortgage_calculator", "platform": "ios", "session_id": "s1", **overrides}
    return _event("app_click", customer_id, **fields)


def nighttime_zone() -> str:
    """An IANA zone where it is around 23:00 now: inside the usual 21:00-08:00 quiet hours."""
    offset = 23 - datetime.now(UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
