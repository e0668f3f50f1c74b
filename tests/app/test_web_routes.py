"""Every route the worker serves, enumerated from its web server: none shows a customer.

The worker's Faust web server is built exactly as ``kairos worker`` builds it (the same
settings translation, our pages, Faust's blueprints as configured), then served on
127.0.0.1 and asked, without a token, for every route it has. Faust's own table pages
once served a customer's whole state (profile, consent, RM, contacts) to anyone; a route
that a Faust upgrade or a new page adds is covered here without editing this test.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agents.health import AgentHealth
from agents.metrics import Metrics
from app.settings import EXAMPLE_RULES, Settings
from app.worker import create_app, web
from rules.language.loader import load_ruleset
from schemas.codec import decode_state, encode_state
from schemas.profile import CustomerProfile
from schemas.state import CustomerState

CUSTOMER = "C-ROUTE-4711"
TOKEN = "a-token-of-sufficient-length-0123"
#: Routes that never show customer data, and so need no token.
PUBLIC = {"/metrics", "/healthz", "/readyz", "/rules", "/"}
#: aiohttp binds an application to the first loop that serves it: one loop for the module.
_LOOP = asyncio.new_event_loop()


class FakeTable(dict[bytes, bytes]):
    """The state table as the pages read it: a mapping with a name."""

    name = "customer_state"


def _table() -> FakeTable:
    profile = CustomerProfile.model_validate(
        {"customer_id": CUSTOMER, "updated_at": "2026-01-01T00:00:00Z", "tier": "private"}
    )
    table = FakeTable()
    table[CUSTOMER.encode()] = encode_state(CustomerState(customer_id=CUSTOMER, profile=profile))
    return table


def _app(token: str | None, tmp_path: Any) -> tuple[faust.App, AgentHealth]:
    settings = Settings(
        broker_url="kafka://127.0.0.1:1",
        app_id=f"routes-{id(tmp_path)}",
        state_dir=tmp_path,
        customer_api_token=SecretStr(token) if token else None,
    )
    app = create_app(settings)
    health = AgentHealth()
    ruleset = load_ruleset(EXAMPLE_RULES)
    table = _table()

    def customer_state(key: bytes) -> CustomerState | None:
        raw = table.get(key)
        return decode_state(raw) if raw is not None else None

    web.install(
        app,
        Metrics(),
        ruleset=lambda: ruleset,
        customer_table=table,
        customer_state=customer_state,
        customer_api_token=settings.customer_api_token,
        health=health,
    )
    app.web.init_server()  # what the worker's web service does when it starts
    return app, health


def _paths(app: faust.App) -> Iterator[str]:
    for resource in app.web.web_app.router.resources():
        canonical = resource.canonical
        yield re.sub(r"\{[^}]+\}", CUSTOMER, canonical)


def _get_all(app: faust.App, headers: dict[str, str] | None = None) -> dict[str, tuple[int, str]]:
    async def run() -> dict[str, tuple[int, str]]:
        async with TestClient(TestServer(app.web.web_app, host="127.0.0.1")) as client:
            answers = {}
            for path in _paths(app):
                response = await client.get(path, headers=headers or {})
                answers[path] = (response.status, await response.text())
            return answers

    return _LOOP.run_until_complete(run())


@pytest.mark.parametrize("token", [None, TOKEN])
def test_every_route_without_a_token_is_public_and_customer_free_or_refused(
    token: str | None, tmp_path: Any
) -> None:
    app, _ = _app(token, tmp_path)
    answers = _get_all(app)
    assert set(answers) >= {"/metrics", "/healthz", "/readyz", "/rules"}
    assert f"/customers/{CUSTOMER}" in answers
    for path, (status, body) in answers.items():
        assert CUSTOMER not in body, f"{path} showed the customer without a token"
        assert "private" not in body or path == "/rules", f"{path} showed the profile"
        if path.split("?")[0] not in PUBLIC:
            assert status in (401, 404), f"{path} answered {status} without a token"
    assert not any(p.startswith(("/table", "/router", "/graph", "/stats")) for p in answers)


def test_the_customer_route_wants_the_token_and_then_routes_to_the_owner(tmp_path: Any) -> None:
    app, _ = _app(TOKEN, tmp_path)
    path = f"/customers/{CUSTOMER}"
    assert _get_all(app)[path][0] == 401
    wrong = _get_all(app, {"Authorization": "Bearer not-the-token-at-all-000000"})
    assert wrong[path][0] == 401
    # With the token the request gets past authentication: the worker is not started, so
    # it has no partitions to route by and says so (503), never the state itself.
    right = _get_all(app, {"Authorization": f"Bearer {TOKEN}"})
    assert right[path][0] == 503


def test_health_tells_the_truth_once_an_agent_failed(tmp_path: Any) -> None:
    app, health = _app(None, tmp_path)
    health.exit_deadline_s = 3600  # this test must not end the test process
    assert _get_all(app)["/healthz"][0] == 200
    health.fail("decide_and_contact")
    answers = _get_all(app)
    assert answers["/healthz"][0] == 503
    assert answers["/readyz"][0] == 503
    assert "kairos_worker_ready 0.0" in answers["/metrics"][1]


def test_metrics_can_be_asked_for_by_name_as_prometheus_clients_server_allows(
    tmp_path: Any,
) -> None:
    app, _ = _app(None, tmp_path)

    async def run() -> tuple[str, str]:
        async with TestClient(TestServer(app.web.web_app, host="127.0.0.1")) as client:
            whole = await (await client.get("/metrics")).text()
            named = await client.get(
                "/metrics", params=[("name[]", "kairos_worker_ready"), ("name[]", "nope")]
            )
            return whole, await named.text()

    whole, named = _LOOP.run_until_complete(run())
    series = [line for line in named.splitlines() if line and not line.startswith("#")]
    assert [line.split()[0] for line in series] == ["kairos_worker_ready"]
    assert "kairos_rule_evaluations_total" in whole and "kairos_rule_evaluations" not in named
