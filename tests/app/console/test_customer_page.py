"""The customer page with the console's real store behind it: decisions with their evidence.

The workers' answer is :class:`FakeCustomers`' (a note of one ``no_consent`` suppression,
decision ``d-1``); the store is a real :class:`ConsoleStore` holding that decision whole, a
contact the channel reported on, and another customer's decisions. The page must show the
store's reason text, evidence, trigger events and channel status, once per decision, and
nothing of anyone else.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.console.pages import CUSTOMER_DECISIONS
from app.console.store import DECISIONS_PER_CUSTOMER, Batch, ConsoleStore
from schemas.decisions import Decision
from schemas.feedback import Feedback
from testkit import factories as make
from tests.app.console.fakes import CUSTOMER, NOW, Harness, console_client

OTHER = "C-SOMEONE-ELSE"


def _decision(customer: str, rule: str, outcome: str, **fields: Any) -> Decision:
    return Decision.model_validate(make.decision(customer, rule, outcome, **fields))


def _store(tmp_path: Path) -> ConsoleStore:
    suppressed = _decision(
        CUSTOMER,
        "loan-dropoff-nudge",
        "suppressed",
        decision_id="d-1",  # the decision the worker's note is of
        rule_version=2,
        reason_code="no_consent",
        reason="no consent for push or sms",
        evidence={"event.flow": "personal_loan_application", "event.step": 3},
        trigger_event_ids=["evt-drop-off-1"],
        decided_at=(NOW - timedelta(hours=2)).isoformat(),
    )
    sent = _decision(
        CUSTOMER,
        "salary-wealth-rm",
        "sent",
        channel="push",
        evidence={"event.amount": 4200.0},
        trigger_event_ids=["evt-salary-9"],
        decided_at=(NOW - timedelta(days=3)).isoformat(),
    )
    opened = Feedback.model_validate(make.feedback(sent.model_dump(mode="json"), "opened"))
    others = [
        _decision(OTHER, "loan-dropoff-nudge", "suppressed", evidence={"event.flow": "mortgage"}),
        _decision(OTHER, "salary-wealth-rm", "sent", trigger_event_ids=["evt-not-theirs"]),
    ]
    store = ConsoleStore(tmp_path / "console.duckdb", "page-secret")
    store.write(Batch(decisions=[suppressed, sent, *others], feedback=[opened]))
    return store


def _entries(page: str) -> list[str]:
    return re.findall(r'<li class="entry[^>]*data-testid="timeline-entry".*?</li>', page, re.S)


def _texts(entry: str, testid: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', entry, re.S)
    return [html.unescape(text).strip() for text in found]


def _run(store: ConsoleStore, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with console_client(store=store) as harness:  # type: ignore[arg-type]
            await scenario(harness)

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_decisions_reason_evidence_triggers_and_channel_status_show_once(
    tmp_path: Path,
) -> None:
    pages: list[str] = []

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        answer = await h.client.post(
            "/customer", data={"customer_id": CUSTOMER, "csrf": await h.csrf()}
        )
        assert answer.status == 200
        pages.append(await answer.text())

    _run(_store(tmp_path), scenario)
    [page] = pages
    decisions = [e for e in _entries(page) if 'data-kind="decision"' in e]
    # the worker's note of d-1 and the store's record of it are one entry: the store's
    [no_consent] = [e for e in decisions if 'data-reason="no_consent"' in e]
    assert 'data-source="store"' in no_consent
    assert _texts(no_consent, "entry-reason-text") == ["no consent for push or sms"]
    assert _texts(no_consent, "evidence-name") == ["event.flow", "event.step"]
    assert _texts(no_consent, "evidence-value") == ["personal_loan_application", "3"]
    assert _texts(no_consent, "entry-trigger") == ["evt-drop-off-1"]
    assert "consent on any channel" in _texts(no_consent, "entry-detail")[0]
    assert not _texts(no_consent, "entry-action-status")
    # the store keeps more than the worker's five notes: the older contact, and its status
    [contact] = [e for e in decisions if "salary-wealth-rm" in e]
    assert _texts(contact, "evidence-value") == ["4200.0"]
    assert _texts(contact, "entry-action-status") == ["opened"]
    assert "PUSH contact" in contact and "evt-salary-9" in contact
    assert len(decisions) == 2, "only this customer's decisions"
    assert "mortgage" not in page and "evt-not-theirs" not in page and OTHER not in page


def test_the_page_asks_for_no_more_decisions_than_the_store_keeps() -> None:
    assert 0 < CUSTOMER_DECISIONS <= DECISIONS_PER_CUSTOMER


def test_a_customer_the_store_has_not_read_yet_shows_the_workers_note(tmp_path: Path) -> None:
    pages: list[str] = []

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        answer = await h.client.post(
            "/customer", data={"customer_id": "C-NEW", "csrf": await h.csrf()}
        )
        pages.append(await answer.text())

    _run(_store(tmp_path), scenario)
    [entry] = [e for e in _entries(pages[0]) if 'data-kind="decision"' in e]
    assert 'data-source="worker"' in entry and 'data-reason="no_consent"' in entry
    assert 'data-testid="entry-note-only"' in entry and "entry-evidence" not in entry
