"""The console's web application: aiohttp, Jinja2 pages, JSON for the charts, all local.

:func:`create_app` builds the application from a :class:`Console` — the store the pages
read (any :class:`~app.console.model.CampaignQueries`), the rules registry, the workers'
customer API, the audit sink and the sign-in checks — so tests build it with fakes and
``kairos console`` with the real ones (:func:`app.console.run.run_console`).

What every request goes through, outermost first:

1. **Security headers** (:func:`_security_headers`): a Content Security Policy allowing
   only this origin's scripts (no inline script, no CDN: plotly.js is served from the
   installed ``plotly`` package), no framing, no referrer, and ``no-store`` on every page
   and JSON answer, so a shared browser's cache keeps no customer.
2. **Sign-in** (:func:`_require_session`): only ``/healthz``, ``/login`` and the style sheet
   and icon the sign-in page needs are public; a path no route matches is a 404. A page
   asked for without a session redirects to ``/login``; a JSON endpoint, a static file or a
   POST answers 401.
3. **CSRF** (:func:`_require_csrf`): every POST but the sign-in (which has its own token)
   carries the session's CSRF token, as the form field ``csrf`` or the header
   ``X-CSRF-Token``; without it, 403 and nothing happens. An upload
   (:data:`STREAMED_UPLOADS`) is not read whole here: its token is the header or the form's
   first field, read alone, and the handler streams the rest to disk within its own bound.

The access log (:class:`AccessLogger`) writes the matched route's template
(``/campaigns/{rule_id}``), never the path or query a browser sent, so neither a customer id
typed into a URL nor anything else a client sends ends up in it; the customer id itself
only ever travels in a POST body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from app.console.audit import AuditSink
from app.console.auth import Credentials, Session, Sessions
from app.console.customers import CustomerSource
from app.console.deploys import RegistryReader
from app.console.model import CampaignQueries

if TYPE_CHECKING:  # its charts import plotly: only the backtest pages need it
    from app.console.backtests import Backtests

log = logging.getLogger(__name__)
access_log = logging.getLogger("kairos.console.access")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "kairos_console"
LOGIN_COOKIE = "kairos_console_login"
#: The only paths served without a session.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/static/console.css", "/static/favicon.svg"})
#: POSTs whose multipart body the handler streams to disk (``request[UPLOAD]``).
STREAMED_UPLOADS = frozenset({"/backtests/runs"})
#: The longest CSRF form field read from an upload's first part.
_MAX_CSRF_FIELD = 256

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # plotly.js styles its charts with a <style> element of its own
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def plotly_js() -> Path:
    """plotly.min.js as the installed ``plotly`` package ships it (no CDN, no build step)."""
    bundled = resources.files("plotly") / "package_data" / "plotly.min.js"
    return Path(str(bundled))


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConsoleOptions:
    """How the console behaves, from the settings."""

    #: Seconds between the pages' refreshes.
    refresh_s: float = 5.0
    #: Session cookies sent over HTTPS only (KAIROS_CONSOLE_COOKIE_SECURE).
    cookie_secure: bool = False
    #: host:port, recorded with each audited look-up.
    name: str = ""


@dataclass
class Console:
    """Everything the handlers use; one per application."""

    store: CampaignQueries
    rules: RegistryReader
    customers: CustomerSource
    audit: AuditSink
    credentials: Credentials
    sessions: Sessions
    options: ConsoleOptions = field(default_factory=ConsoleOptions)
    #: The backtest page's folders and runs; None turns the page off.
    backtests: Backtests | None = None
    #: "Now" for the windows: the demo's simulated clock there, real time elsewhere.
    clock: Callable[[], datetime] = utc_now
    templates: jinja2.Environment = field(default_factory=lambda: templates())

    async def query(self, call: Callable[..., Any], *args: Any) -> Any:
        """A store call off the event loop: DuckDB blocks while it reads."""
        return await asyncio.to_thread(call, *args)


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)
#: A streamed upload's multipart reader, past its CSRF field.
UPLOAD = web.RequestKey("upload", MultipartReader)


def templates() -> jinja2.Environment:
    """The pages' templates, HTML-escaped by default (rule text and names are user input)."""
    from app.console import pages

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(pages.FILTERS)
    return environment


def session_of(request: web.Request) -> Session | None:
    """The signed-in session of a request that passed :func:`_require_session`."""
    session = request.get(SESSION)
    return session if isinstance(session, Session) else None


def create_app(console: Console) -> web.Application:
    """The console's application: routes, middlewares, and ``console`` for the handlers."""
    from app.console import api, backtest_views, pages

    app = web.Application(
        middlewares=[_security_headers, _require_session, _require_csrf],
        # forms only (a look-up, a rollback, a sign-in); an upload is streamed by its handler
        client_max_size=64 * 1024,
    )
    app[CONSOLE] = console
    router = app.router
    router.add_get("/healthz", api.healthz)
    router.add_get("/login", pages.login_form)
    router.add_post("/login", pages.login)
    router.add_post("/logout", pages.logout)
    router.add_get("/", pages.home)
    router.add_get("/campaigns", pages.campaigns)
    router.add_get("/campaigns/{rule_id}", pages.campaign)
    router.add_get("/deploys", pages.deploys)
    router.add_post("/deploys/rollback", pages.rollback_confirmation)
    router.add_post("/deploys/rollback/confirm", pages.rollback)
    router.add_get("/customer", pages.customer_form)
    router.add_post("/customer", pages.customer_lookup)
    router.add_get("/backtests", backtest_views.backtests)
    router.add_post("/backtests/runs", backtest_views.start_run)
    router.add_get("/backtests/runs/{run_id}", backtest_views.run_page)
    router.add_get("/backtests/{name}", backtest_views.backtest)
    router.add_get("/backtests/{name}/files/{file}", backtest_views.backtest_file)
    router.add_get("/api/status", api.status)
    router.add_get("/api/campaigns", api.campaigns)
    router.add_get("/api/campaigns/{rule_id}", api.campaign)
    router.add_get("/api/deploys", api.deploys)
    router.add_get("/api/deploys/diff", api.deploy_diff)
    router.add_get("/api/backtests", backtest_views.api_backtests)
    router.add_get("/api/backtests/runs/{run_id}", backtest_views.api_run)
    router.add_get("/api/backtests/{name}", backtest_views.api_backtest)
    router.add_get("/static/vendor/plotly.min.js", _plotly)
    router.add_static("/static/", STATIC, append_version=False)
    return app


async def _plotly(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(plotly_js())
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _is_public(request: web.Request) -> bool:
    return request.path in PUBLIC_PATHS


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/static/"))


@web.middleware
async def _require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = request.app[CONSOLE]
    session = console.sessions.read(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        request[SESSION] = session
    elif not _is_public(request):
        unmatched = request.match_info.http_exception
        if unmatched is not None:  # no such page (a favicon): say so, never redirect
            raise unmatched
        if _wants_json(request) or request.method != "GET":
            raise web.HTTPUnauthorized(
                text='{"error": "sign in first"}', content_type="application/json"
            )
        raise web.HTTPSeeOther("/login")
    return await handler(request)


@web.middleware
async def _require_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST" and request.path != "/login":
        session = session_of(request)
        presented: object
        if request.path in STREAMED_UPLOADS:
            presented = await _upload_csrf(request)
        else:
            form = await request.post()
            presented = request.headers.get("X-CSRF-Token") or form.get("csrf")
        if session is None or not request.app[CONSOLE].sessions.csrf_matches(
            session, presented if isinstance(presented, str) else None
        ):
            raise web.HTTPForbidden(
                text="The form's CSRF token is missing or wrong: reload the page and try again.",
            )
    return await handler(request)


async def _upload_csrf(request: web.Request) -> str | None:
    """An upload's CSRF token: the header, or the form's first field, read alone.

    A browser sends a form's fields in their order on the page, so the upload form puts its
    ``csrf`` field first; nothing of the files is read before the token is checked. The
    reader, past that field, is left in ``request[UPLOAD]`` for the handler.
    """
    presented = request.headers.get("X-CSRF-Token")
    if request.content_type != "multipart/form-data":
        return presented
    reader = await request.multipart()
    request[UPLOAD] = reader
    if presented:
        return presented
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "csrf":
        return None
    value = b""
    while chunk := await part.read_chunk(_MAX_CSRF_FIELD):
        value += chunk
        if len(value) > _MAX_CSRF_FIELD:
            return None
    return value.decode("utf-8", errors="replace")


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, the route's template, status, time — no client input.

    aiohttp's default line quotes the request line (path and query) and the referrer; a
    customer id pasted into a URL would be kept there. The template of the route that
    matched says which page was served without any of it.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        match = getattr(request, "match_info", None)
        route = getattr(match, "route", None) if match is not None else None
        resource = getattr(route, "resource", None)
        template = getattr(resource, "canonical", None) or "(no route)"
        session = request.get(SESSION)
        who = session.who if isinstance(session, Session) else "-"
        self.logger.info("%s %s %s %d %.3fs", who, request.method, template, response.status, time)


def runner_options() -> dict[str, Any]:
    """What the console's server runs with (tests pass the same to aiohttp's TestServer)."""
    return {"access_log_class": AccessLogger, "access_log": access_log}


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app`` on host:port; the caller cleans the runner up."""
    runner = web.AppRunner(app, **runner_options())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
) -> web.Response:
    """A page from its template, with what every page shows (who, CSRF token, refresh)."""
    console = request.app[CONSOLE]
    session = session_of(request)
    page = console.templates.get_template(template).render(
        {
            "session": session,
            "csrf": console.sessions.csrf_token(session) if session else "",
            "refresh_ms": int(console.options.refresh_s * 1000),
            "path": request.path,
            **context,
        }
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8", status=status)
