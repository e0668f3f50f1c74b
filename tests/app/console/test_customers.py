"""The customer page's pieces: the workers' answer as a timeline, the workers asked in turn,
the console's settings and its generated customer-id secret.
"""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from app.console.customers import (
    REASONS,
    CustomerLookupError,
    WorkerCustomerApi,
    evidence_text,
    timeline,
    view_of,
    worker_urls,
)
from app.console.model import CustomerDecision
from app.console.run import SECRET_FILE, credentials, customer_id_secret
from app.errors import ConfigurationError
from app.settings import Settings, load_settings
from schemas.decisions import Reason

T = "2026-11-30T10:00:00+00:00"


def test_every_reason_code_has_words() -> None:
    assert set(REASONS) == {reason.value for reason in Reason}


def test_the_timeline_puts_events_decisions_contacts_and_feedback_newest_first() -> None:
    state: dict[str, Any] = {
        "last_seen": {"drop_off": "2026-11-30T09:00:00+00:00"},
        "event_counts": {"drop_off": 2},
        "contacts": [
            {
                "channel": "push",
                "rule_id": "nudge",
                "at": "2026-11-30T09:01:00+00:00",
                "status": "opened",
                "status_at": "2026-11-30T09:30:00+00:00",
            }
        ],
        "timers": [
            {
                "rule_id": "sms-wave",
                "kind": "wave",
                "wave": 2,
                "campaign": "nudge",
                "due_at": "2026-12-01T09:00:00+00:00",
            }
        ],
        "goals": [],
        "unreachable": {},
    }
    notes = [
        {
            "rule_id": "nudge",
            "rule_version": 3,
            "outcome": "sent",
            "reason_code": "rule_matched",
            "channel": "push",
            "at": "2026-11-30T09:01:00+00:00",
        },
        {
            "rule_id": "other",
            "rule_version": 1,
            "outcome": "suppressed",
            "reason_code": "arbitration_lost",
            "channel": None,
            "at": "2026-11-30T09:01:00+00:00",
        },
    ]
    entries = timeline(state, notes)
    kinds = [entry.kind for entry in entries]
    assert kinds[0] == "pending" and kinds[-1] == "event"
    assert "feedback" in kinds and "action" in kinds
    lost = next(entry for entry in entries if entry.reason_code == "arbitration_lost")
    assert lost.outcome == "suppressed" and "Another rule won" in lost.detail
    times = [entry.at for entry in entries if entry.at]
    assert times == sorted(times, reverse=True)


def _key(identifier: str) -> str:
    return f"key-of-{identifier}"


def test_the_stores_decisions_replace_the_workers_notes_of_them_and_say_more() -> None:
    stored = [
        CustomerDecision(
            decision_key=_key("d-1"),
            rule_id="offer",
            rule_version=2,
            ruleset_version="rs-9",
            outcome="suppressed",
            reason_code="no_consent",
            reason="no consent on push or sms",
            evidence={"event.screen": "offer", "event.amount": 1500.5, "customer.vip": None},
            trigger_event_ids=["evt-1", "evt-2"],
            decided_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        ),
        CustomerDecision(
            decision_key=_key("d-0"),
            rule_id="nudge",
            rule_version=1,
            ruleset_version="rs-9",
            outcome="sent",
            reason_code="rule_matched",
            reason="push chosen",
            channel="push",
            action_key="0123456789abcdef0123456789abcdef",
            action_status="opened",
            action_status_at=datetime(2026, 11, 30, 8, 30, tzinfo=UTC),
            decided_at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        ),
    ]
    notes = [
        {
            "decision_id": "d-1",
            "rule_id": "offer",
            "rule_version": 2,
            "outcome": "suppressed",
            "reason_code": "no_consent",
            "at": "2026-11-30T09:00:00+00:00",
        },
        # decided a moment ago: the store has not read it yet
        {
            "decision_id": "d-2",
            "rule_id": "offer",
            "rule_version": 2,
            "outcome": "held_out",
            "reason_code": "holdout",
            "at": "2026-11-30T09:05:00+00:00",
        },
    ]
    entries = timeline({}, notes, stored, _key)
    assert [(e.title, e.source) for e in entries] == [
        ("offer v2: held_out", "worker"),
        ("offer v2: suppressed", "store"),
        ("nudge v1: sent on push", "store"),
    ]
    newest, no_consent, contact = entries
    assert not newest.evidence and not newest.reason_text
    assert no_consent.detail == REASONS["no_consent"]
    assert no_consent.reason_text == "no consent on push or sms"
    assert dict(no_consent.evidence) == {
        "event.screen": "offer",
        "event.amount": "1500.5",
        "customer.vip": "null",
    }
    assert list(no_consent.trigger_event_ids) == ["evt-1", "evt-2"]
    assert not no_consent.action
    assert (contact.action, contact.action_status) == ("PUSH contact 01234567", "opened")
    assert contact.action_status_at == datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    # without the store's key nothing can be matched: both are shown
    assert len(timeline({}, notes, stored)) == 4
    assert evidence_text(["a", 1]) == '["a", 1]' and evidence_text("plain") == "plain"


def test_a_customer_the_workers_do_not_know_and_an_api_turned_off_read_differently() -> None:
    unknown = view_of(404, {"error": "no state for this customer"})
    off = view_of(404, {"error": "the customer API is off; set KAIROS_CUSTOMER_API_TOKEN"})
    assert not unknown.found and "no state" in unknown.message
    assert not off.found and "off" in off.message


def test_the_console_asks_the_workers_in_turn_with_the_token() -> None:
    seen: list[tuple[str, str | None]] = []

    async def customer(request: web.Request) -> web.Response:
        seen.append((request.match_info["customer_id"], request.headers.get("Authorization")))
        return web.json_response({"customer_id": "x", "state": {}, "recent_decisions": []})

    async def main() -> tuple[int, dict[str, Any]]:
        app = web.Application()
        app.router.add_get("/customers/{customer_id}", customer)
        async with TestServer(app, host="127.0.0.1") as server:
            down = "http://127.0.0.1:1"  # nothing listens there: the next worker is asked
            api = WorkerCustomerApi([down, str(server.make_url(""))], SecretStr("t" * 20), 2.0)
            return await api.fetch("C 1/2")

    status, body = asyncio.run(main())
    assert status == 200 and body["customer_id"] == "x"
    assert seen == [("C 1/2", "Bearer " + "t" * 20)], "the id is quoted, the token sent"


def test_no_token_or_no_worker_is_a_lookup_error() -> None:
    with pytest.raises(CustomerLookupError, match="KAIROS_CUSTOMER_API_TOKEN"):
        asyncio.run(WorkerCustomerApi(["http://127.0.0.1:1"], None).fetch("C1"))
    with pytest.raises(CustomerLookupError, match="no worker answered"):
        asyncio.run(WorkerCustomerApi(["http://127.0.0.1:1"], SecretStr("t" * 20), 1).fetch("C1"))


def test_worker_urls_split_on_semicolons() -> None:
    assert worker_urls("http://a:6066; http://b:6066 ;") == ["http://a:6066", "http://b:6066"]


def test_console_settings_default_to_loopback_and_refuse_a_short_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert (settings.console_host, settings.console_port) == ("127.0.0.1", 6070)
    monkeypatch.setenv("KAIROS_CONSOLE_TOKEN", "short-one")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "KAIROS_CONSOLE_TOKEN" in str(caught.value) and "short-one" not in str(caught.value)
    monkeypatch.setenv("KAIROS_CONSOLE_TOKEN", "")
    assert load_settings().console_token is None
    with pytest.raises(ConfigurationError, match="needs a way to sign in"):
        credentials(load_settings())


def test_the_customer_id_secret_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(console_store_path=tmp_path / "console" / "console.duckdb")
    first = customer_id_secret(settings)
    path = tmp_path / "console" / SECRET_FILE
    assert len(first) == 64 and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert customer_id_secret(settings) == first, "the same on every start"
    configured = Settings(
        console_store_path=settings.console_store_path,
        console_customer_id_secret=SecretStr("c" * 32),
    )
    assert customer_id_secret(configured) == b"c" * 32
    path.write_text("short\n")
    with pytest.raises(ConfigurationError, match="no usable secret"):
        customer_id_secret(settings)


def test_dates_are_parsed_aware() -> None:
    (entry,) = timeline({"last_seen": {"app_click": T}}, [])
    assert entry.at == datetime(2026, 11, 30, 10, tzinfo=UTC)
