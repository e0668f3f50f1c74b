"""``kairos console`` as its own process on the embedded broker: audit on the real topic.

The console is started exactly as ``kairos demo`` starts it (``ConsoleProcess``: the
``kairos console`` command, configured by ``KAIROS_*`` variables), signed in to over HTTP,
asked for a customer, and stopped with SIGTERM. No worker runs, so the look-up finds no
worker to ask, and that is the point: the audit record is on
``<prefix>.console-audit`` all the same, because it is written before the workers are
asked. The sink is also checked on its own against the topic ``ensure_topics`` created.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from app.console.audit import KafkaAuditSink
from app.kafka import free_port, read_to_end
from app.kafka.processes import ConsoleProcess
from schemas.console_audit import ConsoleAudit
from tests.integration.conftest import KairosUnderTest

pytestmark = pytest.mark.integration

TOKEN = "integration-console-token-0123"
CUSTOMER = "C-AUDIT-777"


def _audit_records(kairos: KairosUnderTest) -> list[tuple[bytes | None, dict[str, object]]]:
    return [
        (record.key, json.loads(record.value))
        for record in read_to_end(
            [kairos.broker.bootstrap], [kairos.topics.console_audit], 20.0, "test-audit"
        )
    ]


def test_the_audit_sink_writes_each_look_up_to_the_topic_keyed_by_customer(
    kairos: Callable[..., KairosUnderTest],
) -> None:
    under_test = kairos()
    sink = KafkaAuditSink([under_test.broker.bootstrap], under_test.topics.console_audit)
    entry = ConsoleAudit(
        audit_id="a-1", who="alice", customer_id=CUSTOMER, at=datetime.now(UTC), purpose="t-1"
    )
    try:
        asyncio.run(sink.record(entry))
    finally:
        sink.close()
    ((key, value),) = _audit_records(under_test)
    assert key == CUSTOMER.encode()
    assert ConsoleAudit.model_validate(value) == entry


def test_kairos_console_serves_audits_on_the_topic_and_stops_on_sigterm(
    kairos: Callable[..., KairosUnderTest], tmp_path: Path
) -> None:
    under_test = kairos()
    env = {
        **under_test.env,
        "KAIROS_CONSOLE_TOKEN": TOKEN,
        "KAIROS_CONSOLE_STORE_PATH": str(tmp_path / "console" / "console.duckdb"),
        "KAIROS_CUSTOMER_API_TOKEN": "worker-api-token-0123456",
        "KAIROS_CONSOLE_WORKER_URLS": f"http://127.0.0.1:{free_port()}",  # nobody there
    }
    log = tmp_path / "console.log"
    console = ConsoleProcess(env, free_port(), log)
    with console:
        console.wait_ready(timeout=60)
        status, health = console.get_json("/healthz")
        assert status == 200 and health["status"] == "alive"
        page = asyncio.run(_look_up(console.base_url))
        assert "The workers did not answer" in page
        ((key, value),) = _audit_records(under_test)
        assert key == CUSTOMER.encode()
        assert value["who"] == "ops (token)" and value["customer_id"] == CUSTOMER
        assert console.stop(timeout=30) == 0, log.read_text()  # SIGTERM: a clean stop
    text = log.read_text()
    assert "Kairos console on http://127.0.0.1:" in text and "Stopping the console" in text
    assert CUSTOMER not in text, "a customer id reached the console's log"
    assert TOKEN not in text


async def _look_up(base_url: str) -> str:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url, cookie_jar=jar) as session:
        login = await (await session.get("/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]*)"', login)
        assert csrf
        signed_in = await session.post(
            "/login",
            data={"method": "token", "name": "ops", "token": TOKEN, "csrf": csrf.group(1)},
        )
        assert str(signed_in.url).endswith("/campaigns"), await signed_in.text()
        form = await (await session.get("/customer")).text()
        csrf = re.search(r'name="csrf" value="([^"]*)"', form)
        assert csrf
        answer = await session.post(
            "/customer", data={"customer_id": CUSTOMER, "csrf": csrf.group(1)}
        )
        assert answer.status == 502
        return await answer.text()
