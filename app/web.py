"""HTTP endpoints on the worker's Faust web server: metrics, liveness, readiness."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.metrics import Metrics


def is_ready(app: faust.App) -> bool:
    """Partitions assigned and table state recovered: only then are decisions current."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManager, not the ABC
    return bool(recovery.completed.is_set() and not app.rebalancing)


def install(app: faust.App, metrics: Metrics) -> None:
    """Register ``/metrics``, ``/healthz`` and ``/readyz`` on ``app``'s web server."""

    @app.page("/metrics")
    async def prometheus_metrics(web: View, request: Request) -> Response:
        metrics.ready.set(1 if is_ready(app) else 0)
        body = generate_latest(metrics.registry)
        return web.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        ready = is_ready(app)
        metrics.ready.set(1 if ready else 0)
        return web.json({"ready": ready}, status=200 if ready else 503)
