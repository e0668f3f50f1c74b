"""Small stand-ins for what the console's web side talks to, and a signed-in test client.

* :class:`FakeStore` implements :class:`app.console.model.CampaignQueries` from fixed
  records and remembers what it was asked (window, now);
* :class:`FakeRules` is the rules topic in memory: a real :class:`rules.deployments.Registry`
  built from real bundles, and the rollbacks "published";
* :class:`FakeCustomers` answers like the workers' customer API and remembers the ids asked;
* :func:`console_client` serves the real application on 127.0.0.1 with aiohttp's TestServer,
  with the console's own access logger, and signs in through the real sign-in form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from app.console.audit import ListAuditSink
from app.console.auth import Credentials, Sessions, hash_password
from app.console.deploys import RegistryReader
from app.console.model import (
    CampaignDetail,
    CampaignRow,
    DayCount,
    RuleVersion,
    StoreStatus,
    Window,
)
from app.console.web import Console, ConsoleOptions, create_app, runner_options
from rules.deployments import LIVE_KEY, Registry, bundle_key
from rules.language.loader import compile_sources
from schemas.codec import encode
from schemas.deployment import LivePointer, PointerAction, RulesetBundle

TOKEN = "console-token-of-sufficient-length"
PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CUSTOMER = "C-WHY-0042"

ROWS = [
    CampaignRow(
        rule_id="loan-dropoff-nudge",
        fired=120,
        sent=80,
        sent_by_channel={"push": 50, "sms": 30},
        suppressed_by_reason={"no_consent": 17, "cooldown": 3},
        held_out=20,
        delivered=75,
        engaged=31,
        delivered_rate=75 / 80,
        engaged_rate=31 / 80,
        treated_conversions=12,
        holdout_conversions=1,
        treated_rate=0.15,
        holdout_rate=0.05,
        uplift=0.10,
        uplift_ci95=(0.012, 0.188),
        trend=[0, 1, 4, 9, 12, 8, 7, 10, 11, 6, 3, 2, 5, 2],
    ),
    CampaignRow(
        rule_id="salary-wealth-rm",
        fired=9,
        sent=4,
        sent_by_channel={"rm": 4},
        suppressed_by_reason={"rm_capacity": 5},
        trend=[0] * 13 + [4],
    ),
]


class FakeStore:
    """The store as the pages see it: fixed rows, and a log of what was asked."""

    def __init__(self, rows: list[CampaignRow] | None = None) -> None:
        self.rows = list(ROWS if rows is None else rows)
        self.asked: list[tuple[str, Any, datetime]] = []

    def campaigns(self, window: Window, now: datetime) -> list[CampaignRow]:
        self.asked.append(("campaigns", window, now))
        return self.rows

    def campaign(self, rule_id: str, now: datetime) -> CampaignDetail | None:
        self.asked.append(("campaign", rule_id, now))
        row = next((r for r in self.rows if r.rule_id == rule_id), None)
        if row is None:
            return None
        return CampaignDetail(
            row=row,
            contacts_per_day=[
                DayCount(day=date(2026, 11, 29), channel="push", contacts=30),
                DayCount(day=date(2026, 11, 30), channel="sms", contacts=30),
            ],
            local_hour={9: 40, 18: 40},
            versions=[
                RuleVersion(
                    rule_version=2,
                    ruleset_versions=["rs-2"],
                    first_deployed_at=NOW,
                    text="id: loan-dropoff-nudge\nversion: 2\n",
                )
            ],
        )

    def status(self) -> StoreStatus:
        return StoreStatus(records=4321, last_record_at=NOW, lag=7)


def rules_file(*rule_ids: str) -> str:
    body = "".join(
        f"""\
  - id: {rule_id}
    version: 1
    event: app_click
    when: event.screen == "home"
    channels: [push]
    template: {rule_id}
    priority: 50
"""
        for rule_id in rule_ids
    )
    return "rules:\n" + body


def bundle(files: dict[str, str], by: str, comment: str = "") -> RulesetBundle:
    version = compile_sources(files).version
    return RulesetBundle(
        version=version, files=files, deployed_at=NOW, deployed_by=by, comment=comment
    )


class FakeRules:
    """The rules topic in memory: what is stored, what is live, and the rollbacks made."""

    def __init__(self, *records: RulesetBundle | LivePointer) -> None:
        self.records = list(records)
        self.rollbacks: list[tuple[str, str]] = []
        self.reads = 0

    def read(self) -> Registry:
        self.reads += 1
        registry = Registry()
        for record in self.records:
            key = bundle_key(record.version) if isinstance(record, RulesetBundle) else LIVE_KEY
            registry.add(key.encode(), encode(record))
        return registry

    def rollback(self, registry: Registry, by: str, to: str | None = None) -> LivePointer:
        target = registry.rollback_target(to)
        pointer = registry.next_pointer(target, PointerAction.ROLLBACK, by)
        self.records.append(pointer)
        self.rollbacks.append((target, by))
        return pointer


def two_deploys() -> tuple[FakeRules, RulesetBundle, RulesetBundle]:
    """``first`` (two rules) deployed, then ``second`` (one of them) deployed over it."""
    first = bundle({"rules.yaml": rules_file("welcome", "nudge")}, "ann", "launch")
    second = bundle({"rules.yaml": rules_file("welcome")}, "bob", "stop the nudge")
    rules = FakeRules(
        first,
        LivePointer(version=first.version, action=PointerAction.DEPLOY, at=NOW, by="ann"),
        second,
        LivePointer(
            version=second.version,
            previous_version=first.version,
            action=PointerAction.DEPLOY,
            at=NOW,
            by="bob",
        ),
    )
    return rules, first, second


@dataclass
class FakeCustomers:
    """The workers' customer API: a fixed answer, and the ids it was asked for."""

    status: int = 200
    asked: list[str] = field(default_factory=list)

    async def fetch(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        self.asked.append(customer_id)
        if self.status != 200:
            return self.status, {"error": "no state for this customer"}
        return 200, {
            "customer_id": customer_id,
            "served_by": "http://worker-1:6066",
            "recent_decisions": [
                {
                    "decision_id": "d-1",
                    "rule_id": "loan-dropoff-nudge",
                    "rule_version": 2,
                    "outcome": "suppressed",
                    "reason_code": "no_consent",
                    "channel": None,
                    "at": "2026-11-30T10:00:00+00:00",
                }
            ],
            "state": {
                "customer_id": customer_id,
                "profile": {"tier": "mass", "consent": {"sms": False}, "timezone": "Europe/Madrid"},
                "last_seen": {"drop_off": "2026-11-30T09:30:00+00:00"},
                "event_counts": {"drop_off": 3},
                "contacts": [],
                "timers": [],
                "goals": [],
            },
        }


@dataclass
class Harness:
    """The running console's test client and the fakes behind it."""

    client: TestClient[Any, Any]
    console: Console
    store: FakeStore
    rules: FakeRules
    customers: FakeCustomers
    audit: ListAuditSink

    async def sign_in(self, name: str = "alice", token: str = TOKEN) -> int:
        """Sign in through the form with the token; the answer's status (303 = signed in)."""
        form = await self.client.get("/login")
        csrf = hidden(await form.text(), "csrf")
        answer = await self.client.post(
            "/login",
            data={"method": "token", "name": name, "token": token, "csrf": csrf},
            allow_redirects=False,
        )
        return answer.status

    async def csrf(self, path: str = "/customer") -> str:
        """The session's CSRF token, as a signed-in page carries it."""
        page = await self.client.get(path)
        return hidden(await page.text(), "csrf")


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1)


@asynccontextmanager
async def console_client(
    store: FakeStore | None = None,
    rules: FakeRules | None = None,
    customers: FakeCustomers | None = None,
    users: dict[str, str] | None = None,
    token: str | None = TOKEN,
) -> AsyncIterator[Harness]:
    """The real console application on 127.0.0.1 (real HTTP), with fakes behind it."""
    store = store or FakeStore()
    rules = rules or two_deploys()[0]
    customers = customers or FakeCustomers()
    audit = ListAuditSink()
    console = Console(
        store=store,
        rules=RegistryReader(rules, max_age_s=0.0),
        customers=customers,
        audit=audit,
        credentials=Credentials(SecretStr(token) if token else None, users),
        sessions=Sessions(b"k" * 32),
        options=ConsoleOptions(refresh_s=2.0, name="test:6070"),
        clock=lambda: NOW,
    )
    server = TestServer(create_app(console), host="127.0.0.1")
    # Started here, with the console's own runner options (its access logger): TestClient
    # would start it with aiohttp's defaults.
    await server.start_server(**runner_options())
    async with TestClient(server) as client:
        yield Harness(client, console, store, rules, customers, audit)


def users_file_entry(user: str = "carol", password: str = PASSWORD) -> dict[str, str]:
    """A users file's content as read: one user, her password hashed cheaply for speed."""
    return {user: hash_password(password, n=2**4)}
