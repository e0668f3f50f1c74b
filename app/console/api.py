"""The console's JSON endpoints: what the pages' charts draw and their refreshes fetch.

Each answers with the store's records as they are (:mod:`app.console.model`, serialised by
pydantic), plus ``as_of`` (the console's clock) and the store's ``status`` (how far it has
read), so a page can say how fresh its numbers are. None of them shows a customer: the
store holds customer ids only as keyed hashes, and the customer page has no JSON endpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from aiohttp import web

from app.console.deploys import history
from app.console.model import CampaignDetail, CampaignRow, StoreStatus
from app.console.pages import window_param
from app.console.web import CONSOLE
from rules.errors import DeploymentError


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str, separators=(",", ":"))


async def healthz(request: web.Request) -> web.Response:
    """Alive, and how far the store has read (no sign-in: for the platform's probes)."""
    console = request.app[CONSOLE]
    try:
        status: StoreStatus = await console.query(console.store.status)
    except Exception as exc:  # a probe reports any failure of the store, never raises
        return _json({"status": "failed", "store": type(exc).__name__}, status=503)
    return _json({"status": "alive", "store": status.model_dump(mode="json")})


async def status(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    store: StoreStatus = await console.query(console.store.status)
    return _json({"as_of": console.clock().isoformat(), "status": store.model_dump(mode="json")})


async def campaigns(request: web.Request) -> web.Response:
    """Every rule's row over ``?window=`` (today, 7d, 30d, all)."""
    console = request.app[CONSOLE]
    window = window_param(request)
    now = console.clock()
    rows: list[CampaignRow] = await console.query(console.store.campaigns, window, now)
    store: StoreStatus = await console.query(console.store.status)
    return _json(
        {
            "window": window,
            "as_of": now.isoformat(),
            "status": store.model_dump(mode="json"),
            "rows": [row.model_dump(mode="json") for row in rows],
        }
    )


async def campaign(request: web.Request) -> web.Response:
    """One rule's page: its row, contacts per day, local hours, versions."""
    console = request.app[CONSOLE]
    rule_id = request.match_info["rule_id"]
    now = console.clock()
    detail: CampaignDetail | None = await console.query(console.store.campaign, rule_id, now)
    if detail is None:
        return _json({"error": "no such rule in the store"}, status=404)
    store: StoreStatus = await console.query(console.store.status)
    return _json(
        {
            "as_of": now.isoformat(),
            "status": store.model_dump(mode="json"),
            "detail": detail.model_dump(mode="json"),
        }
    )


async def deploys(request: web.Request) -> web.Response:
    """The live version, every stored version and the live pointer's moves."""
    console = request.app[CONSOLE]
    try:
        registry = await console.rules.read()
    except DeploymentError as exc:
        return _json({"error": str(exc)}, status=503)
    versions = await asyncio.to_thread(console.rules.versions, registry)
    return _json(
        {
            "live": registry.live,
            "versions": [asdict(version) for version in versions],
            "history": [asdict(row) for row in history(registry)],
        }
    )


async def deploy_diff(request: web.Request) -> web.Response:
    """``?from=A&to=B``: what replacing A by B changes, rule by rule and as text."""
    console = request.app[CONSOLE]
    old, new = request.query.get("from", ""), request.query.get("to", "")
    if not old or not new:
        return _json({"error": "give ?from=VERSION&to=VERSION"}, status=400)
    try:
        registry = await console.rules.read()
    except DeploymentError as exc:
        return _json({"error": str(exc)}, status=503)
    diff = await asyncio.to_thread(console.rules.diff, registry, old, new)
    return _json(asdict(diff), status=404 if diff.problem and "no stored" in diff.problem else 200)
