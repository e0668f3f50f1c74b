"""HTTP endpoints on the worker's Faust web server.

``/metrics``, ``/healthz`` and ``/readyz`` for the platform; ``/rules`` for marketing ops
("what is live?"); ``/customers/{id}`` for support ("why did, or didn't, this customer hear
from us?"). The last serves personal data, so it is off unless a bearer token is
configured, and the token is compared in constant time and never logged. Faust's own
pages (``/table/...`` serves whole table rows, ``/router/...`` locates keys) are switched
off in :func:`app.worker.faust_app.faust_settings`: these routes are all the worker serves, and
``tests/app/test_web_routes.py`` holds every route to that.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import faust
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from agents.health import AgentHealth, is_ready
from agents.metrics import Metrics
from rules.ruleset import Ruleset
from schemas.state import CustomerState, state_view

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying while partitions move between workers.
RETRY_AFTER_S = 2


def bearer_token_matches(header: str | None, token: SecretStr) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), token.get_secret_value().encode())


def ruleset_summary(ruleset: Ruleset) -> dict[str, Any]:
    """The live ruleset as marketing ops wrote it: version, rules, features, policy."""
    return {
        "version": ruleset.version,
        "rules": [rule.spec.model_dump(mode="json") for rule in ruleset.rules],
        "features": [f.spec.model_dump(mode="json") for f in ruleset.features.values()],
        "policy": ruleset.policy.as_spec().model_dump(mode="json"),
    }


def _unavailable(web: View, why: str) -> Response:
    response = web.json({"error": why}, status=503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def install(
    app: faust.App,
    metrics: Metrics,
    ruleset: Callable[[], Ruleset],
    customer_table: Any,
    customer_state: Callable[[bytes], CustomerState | None],
    customer_api_token: SecretStr | None,
    health: AgentHealth,
) -> None:
    """Register the endpoints on ``app``'s web server."""

    @app.page("/metrics")
    async def prometheus_metrics(web: View, request: Request) -> Response:
        """Every series, or only those named by ``name[]`` (as prometheus-client's server).

        A worker with a hundred rules exposes thousands of series; a dashboard or a script
        that needs one asks for it by name and the worker renders only that.
        """
        metrics.ready.set(1 if is_ready(app, health) else 0)
        names = request.rel_url.query.getall("name[]", [])
        registry = metrics.registry.restricted_registry(names) if names else metrics.registry
        body = generate_latest(registry)
        return web.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        if not health.alive:  # an agent died: the process is on its way out
            return web.json({"status": "failed", "agent": health.failed_agent}, status=503)
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        ready = is_ready(app, health)
        metrics.ready.set(1 if ready else 0)
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/rules")
    async def live_rules(web: View, request: Request) -> Response:
        return web.json(ruleset_summary(ruleset()))

    @app.page("/customers/{customer_id}")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        if customer_api_token is None:
            return web.json(
                {"error": "the customer API is off; set KAIROS_CUSTOMER_API_TOKEN to enable"},
                status=404,
            )
        if not bearer_token_matches(request.headers.get("Authorization"), customer_api_token):
            response = web.json({"error": "a valid bearer token is required"}, status=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="kairos"'
            return response
        key = customer_id.encode()
        try:  # the worker that owns the customer's partition answers
            return await app.router.route_req(customer_table.name, key, web.web, request)
        except SameNode:
            pass
        except aiohttp.ClientError as exc:
            # the type only: the error's text holds the URL, and the URL the customer id
            log.warning(
                "Could not reach the owner of a customer's partition (%s)", type(exc).__name__
            )
            return _unavailable(web, "the worker owning this customer is unreachable")
        except faust.web.exceptions.ServiceUnavailable:
            return _unavailable(web, "partitions are being assigned")
        if not is_ready(app, health):
            return _unavailable(web, "this worker is recovering its state")
        state = customer_state(key)  # what the agent decides on, even before it is stored
        if state is None:
            return web.json({"error": "no state for this customer"}, status=404)
        view = state_view(state)
        return web.json(
            {
                "customer_id": state.customer_id,
                "served_by": str(app.conf.canonical_url),
                "recent_decisions": view.pop("recent_decisions"),
                "state": view,
            }
        )
