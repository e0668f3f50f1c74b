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


# -- what the workers write, and what channels report back (the console's and report's input)


def decision(
    customer_id: str, rule_id: str, outcome: str = "sent", **overrides: Any
) -> dict[str, Any]:
    """A decision record as a worker writes it on ``kairos.decisions``.

    A sent one has a channel and an action id (``act-<decision id>``); a suppressed one the
    reason ``no_consent`` unless ``reason_code`` says otherwise.
    """
    n = next(_ids)
    decision_id = overrides.pop("decision_id", f"dec-{n}")
    sent = outcome == "sent"
    base: dict[str, Any] = {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "rule_id": rule_id,
        "rule_version": 1,
        "ruleset_version": "rs-test",
        "outcome": outcome,
        "reason_code": {
            "sent": "rule_matched",
            "held_out": "holdout",
            "deferred": "quiet_hours",
        }.get(outcome, "no_consent"),
        "reason": f"{rule_id}: {outcome}",
        "channel": "sms" if sent else None,
        "action_id": f"act-{decision_id}" if sent else None,
        "trigger_event_ids": [f"evt-{n}"],
        "decided_at": now_iso(),
        "evidence": {},
        "schema_version": 1,
    }
    return {**base, **overrides}


def conversion(made: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The conversion of the decision ``made`` (sent: treated; held out: holdout)."""
    base: dict[str, Any] = {
        "conversion_id": f"cnv-{made['decision_id']}",
        "customer_id": made["customer_id"],
        "rule_id": made["rule_id"],
        "rule_version": made["rule_version"],
        "decision_id": made["decision_id"],
        "group": "holdout" if made["outcome"] == "held_out" else "treated",
        "event_id": f"evt-goal-{next(_ids)}",
        "converted_at": now_iso(),
        "schema_version": 1,
    }
    return {**base, **overrides}


def feedback(made: dict[str, Any], status: str, **overrides: Any) -> dict[str, Any]:
    """A channel's report of ``status`` on the action of the sent decision ``made``."""
    base: dict[str, Any] = {
        "feedback_id": f"fb-{status}-{made['action_id']}",
        "action_id": made["action_id"],
        "customer_id": made["customer_id"],
        "channel": made["channel"],
        "status": status,
        "occurred_at": now_iso(),
    }
    if status == "failed":
        base["failure"] = "hard"
    return {**base, **overrides}
