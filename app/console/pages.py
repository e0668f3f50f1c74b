"""The console's HTML pages: sign-in, campaigns, one campaign, deploys, one customer.

Each page is rendered whole on the server, so it reads without a script; the scripts in
``static/`` then draw the charts and refresh the numbers from the JSON endpoints
(:mod:`app.console.api`). Every element a browser test or a person's eye looks for has a
stable ``id`` or ``data-testid`` (listed in docs/console.md).

The customer page is the only one that shows a customer. Its id is sent in a POST body,
never in a URL; each look-up is audited before anything is asked of the workers, and the
page is not refreshed on its own: looking again is a new, audited look-up.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from app.console.audit import AuditError
from app.console.customers import CustomerDecisions, CustomerLookupError, view_of
from app.console.deploys import history
from app.console.model import WINDOWS, CampaignDetail, CampaignRow, StoreStatus, Window
from app.console.web import (
    CONSOLE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Console,
    render,
    session_of,
)
from rules.deployments import Registry, checked_rollback_target
from rules.errors import DeploymentError, RollbackError, RuleFileError
from schemas.actions import Channel
from schemas.console_audit import ConsoleAudit

#: Windows as the selector names them.
WINDOW_LABELS: dict[str, str] = {
    "today": "Today",
    "7d": "7 days",
    "30d": "30 days",
    "all": "All",
}
DEFAULT_WINDOW: Window = "7d"
#: A sign-in name: letters, digits and a few separators, as an audit trail can show it.
_NAME = re.compile(r"^[\w .@'-]{1,64}$")
_MAX_CUSTOMER_ID = 256
#: Decisions of the customer shown when the store keeps them (CustomerDecisions).
CUSTOMER_DECISIONS = 50


# --------------------------------------------------------------------------- filters


def pct(value: float | None, digits: int = 1) -> str:
    """A rate as a percentage; an em dash when there is nothing to divide by."""
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def points(value: float | None) -> str:
    """A difference of rates, in percentage points, signed."""
    return "—" if value is None else f"{value * 100:+.1f} pp"


def interval(value: tuple[float, float] | list[float] | None) -> str:
    """A 95 % interval of a difference of rates, in percentage points."""
    if value is None:
        return "—"
    low, high = value
    return f"[{low * 100:+.1f}, {high * 100:+.1f}] pp"


def number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


def when(value: datetime | None) -> str:
    """An instant to the second, in UTC: the same for everyone reading the page."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value.tzinfo else value.isoformat()


def breakdown(counts: Mapping[str, int]) -> str:
    """``reason 12 · other 3``, largest first."""
    parts = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return " · ".join(f"{name} {count:,}" for name, count in parts)


FILTERS: dict[str, Any] = {
    "pct": pct,
    "points": points,
    "interval": interval,
    "number": number,
    "when": when,
    "breakdown": breakdown,
}


# --------------------------------------------------------------------------- helpers


def _field(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def window_param(request: web.Request) -> Window:
    value = request.query.get("window", DEFAULT_WINDOW)
    for window in WINDOWS:
        if window == value:
            return window
    raise web.HTTPBadRequest(text=f"window must be one of {', '.join(WINDOWS)}")


def _problem(request: web.Request, title: str, message: str, status: int) -> web.Response:
    return render(request, "problem.html", {"title": title, "message": message}, status=status)


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, **extra: Any
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=_console(request).options.cookie_secure,
        **extra,
    )


# --------------------------------------------------------------------------- sign-in


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/campaigns")


async def login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    """The sign-in form, with a fresh CSRF token bound to a cookie of its own."""
    if session_of(request) is not None and not error:
        raise web.HTTPSeeOther("/campaigns")
    console = _console(request)
    # The form's token is bound to this cookie: keep a fresh one, so that a second sign-in
    # page (another tab, a reload) does not invalidate the form already shown.
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not console.sessions.login_nonce_fresh(nonce):
        nonce = console.sessions.login_nonce()
    response = render(
        request,
        "login.html",
        {
            "login_csrf": console.sessions.login_csrf_token(nonce),
            "accepts_token": console.credentials.accepts_token,
            "accepts_passwords": console.credentials.accepts_passwords,
            "error": error,
        },
        status=status,
    )
    _set_cookie(response, request, LOGIN_COOKIE, nonce, path="/login", max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Check the token or the password; on success, a signed session cookie."""
    console = _console(request)
    form = await request.post()
    if not console.sessions.login_csrf_matches(
        request.cookies.get(LOGIN_COOKIE), _field(form, "csrf")
    ):
        return await login_form(
            request, "The sign-in form expired or was not this console's: try again.", 403
        )
    method = _field(form, "method")
    if method == "token":
        name = _field(form, "name")
        if not _NAME.match(name):
            return await login_form(
                request, "Give your name (letters, digits, . @ ' -): the audit trail needs it.", 400
            )
        ok = console.credentials.token_matches(_field(form, "token"))
        user = name
    elif method == "password":
        user = _field(form, "user")
        ok = console.credentials.password_matches(user, _field(form, "password"))
    else:
        return await login_form(request, "Choose how to sign in.", 400)
    if not ok:
        await asyncio.sleep(0.2 + secrets.randbelow(100) / 1000)  # slows guessing a little
        return await login_form(request, "Wrong token, user or password.", 401)
    response = web.HTTPSeeOther("/campaigns")
    cookie = console.sessions.issue(user, "token" if method == "token" else "password")
    _set_cookie(
        response, request, SESSION_COOKIE, cookie, path="/", max_age=int(console.sessions.ttl_s)
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None:
        _console(request).sessions.revoke(session)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# --------------------------------------------------------------------------- campaigns


async def campaigns(request: web.Request) -> web.Response:
    console = _console(request)
    window = window_param(request)
    rows: list[CampaignRow] = await console.query(console.store.campaigns, window, console.clock())
    status: StoreStatus = await console.query(console.store.status)
    return render(
        request,
        "campaigns.html",
        {
            "window": window,
            "windows": WINDOW_LABELS,
            "rows": rows,
            "channels": [channel.value for channel in Channel],
            "status": status,
            "now": console.clock(),
        },
    )


async def campaign(request: web.Request) -> web.Response:
    console = _console(request)
    rule_id = request.match_info["rule_id"]
    detail: CampaignDetail | None = await console.query(
        console.store.campaign, rule_id, console.clock()
    )
    status: StoreStatus = await console.query(console.store.status)
    if detail is None:
        return _problem(
            request,
            "No such campaign",
            f"The store has no decision of a rule called {rule_id!r} yet.",
            404,
        )
    return render(
        request,
        "campaign.html",
        {
            "detail": detail,
            "row": detail.row,
            "status": status,
            "versions": sorted(detail.versions, key=lambda v: v.rule_version, reverse=True),
            "now": console.clock(),
        },
    )


# --------------------------------------------------------------------------- deploys


async def _registry(request: web.Request, fresh: bool = False) -> Registry | web.Response:
    try:
        return await _console(request).rules.read(fresh=fresh)
    except DeploymentError as exc:
        return _problem(request, "The rules topic cannot be read", str(exc), 503)


async def deploys(request: web.Request) -> web.Response:
    """The live version, every stored version, the live pointer's moves, and a diff."""
    console = _console(request)
    registry = await _registry(request)
    if isinstance(registry, web.Response):
        return registry
    versions = await asyncio.to_thread(console.rules.versions, registry)
    pointer = registry.pointer
    old = request.query.get("from") or (pointer.previous_version if pointer else None)
    new = request.query.get("to") or registry.live
    diff = None
    if old and new:
        diff = await asyncio.to_thread(console.rules.diff, registry, old, new)
    return render(
        request,
        "deploys.html",
        {
            "live": registry.live,
            "pointer": pointer,
            "versions": versions,
            "history": history(registry),
            "diff": diff,
            "diff_from": old or "",
            "diff_to": new or "",
            "rolled_back": request.query.get("rolled_back", ""),
        },
    )


async def rollback_confirmation(request: web.Request) -> web.Response:
    """Step one: the checks a rollback makes, then what it would change, and a confirm button."""
    console = _console(request)
    form = await request.post()
    registry = await _registry(request, fresh=True)
    if isinstance(registry, web.Response):
        return registry
    to = _field(form, "to") or None
    refused = await asyncio.to_thread(_refusal, registry, to)
    if refused:
        return _problem(request, "Rollback refused", refused, 409)
    target = registry.rollback_target(to)
    live = registry.live or ""
    diff = await asyncio.to_thread(console.rules.diff, registry, live, target)
    return render(
        request,
        "rollback_confirm.html",
        {"live": live, "target": target, "diff": diff},
    )


async def rollback(request: web.Request) -> web.StreamResponse:
    """Step two: the same checks again on a fresh read, then publish, as the CLI does.

    The confirmation named the version that was live then; if another deploy or rollback
    happened since, the user confirmed something else, so nothing is published.
    """
    console = _console(request)
    session = session_of(request)
    form = await request.post()
    if _field(form, "confirm") != "yes":
        return _problem(request, "Not confirmed", "The rollback was not confirmed.", 400)
    registry = await _registry(request, fresh=True)
    if isinstance(registry, web.Response):
        return registry
    if (registry.live or "") != _field(form, "expected_live"):
        return _problem(
            request,
            "The live version changed",
            f"{registry.live} is live now, not {_field(form, 'expected_live')}, which you "
            "confirmed against: nothing was rolled back. Look at the deploys again.",
            409,
        )
    to = _field(form, "to") or None
    refused = await asyncio.to_thread(_refusal, registry, to)
    if refused:
        return _problem(request, "Rollback refused", refused, 409)
    who = f"{session.who}@console" if session else "console"
    try:
        pointer = await asyncio.to_thread(console.rules.registry.rollback, registry, who, to)
    except (DeploymentError, RollbackError) as exc:
        return _problem(request, "Rollback failed", str(exc), 503)
    finally:
        console.rules.forget()
    raise web.HTTPSeeOther(f"/deploys?rolled_back={pointer.version}")


def _refusal(registry: Registry, to: str | None) -> str | None:
    """Why ``kairos rules rollback`` would refuse this rollback, or None."""
    try:
        checked_rollback_target(registry, to)
    except RollbackError as exc:
        return f"Cannot roll back: {exc}"
    except RuleFileError as exc:
        target = registry.rollback_target(to)
        problems = "; ".join(str(problem) for problem in exc.problems[:5])
        return f"Cannot roll back: {target} does not compile with this Kairos: {problems}"
    except DeploymentError as exc:
        return f"Cannot roll back: {exc}"
    return None


# --------------------------------------------------------------------------- customer


async def customer_form(request: web.Request) -> web.Response:
    return render(request, "customer.html", {"view": None, "customer_id": "", "error": ""})


async def customer_lookup(request: web.Request) -> web.Response:
    """Audit the look-up, then ask the workers; nothing is shown if the audit fails."""
    console = _console(request)
    session = session_of(request)
    form = await request.post()
    customer_id = _field(form, "customer_id")
    purpose = _field(form, "purpose")[:1024]
    if not customer_id or len(customer_id) > _MAX_CUSTOMER_ID:
        return render(
            request,
            "customer.html",
            {"view": None, "customer_id": "", "error": "Give a customer id (1-256 characters)."},
            status=400,
        )
    entry = ConsoleAudit(
        audit_id=secrets.token_hex(16),
        who=session.who if session else "-",
        customer_id=customer_id,
        at=console.clock(),
        purpose=purpose,
        console=console.options.name,
    )
    try:
        await console.audit.record(entry)
    except AuditError as exc:
        return _problem(request, "Look-up not made", f"It could not be audited: {exc}.", 503)
    try:
        status, body = await console.customers.fetch(customer_id)
    except CustomerLookupError as exc:
        return _problem(request, "The workers did not answer", str(exc), 502)
    decisions, key = [], None
    if isinstance(console.store, CustomerDecisions):  # the reasons and evidence it keeps
        key = console.store.key
        decisions = await console.query(
            console.store.customer_decisions, customer_id, CUSTOMER_DECISIONS
        )
    return render(
        request,
        "customer.html",
        {
            "view": view_of(status, body, decisions, key),
            "customer_id": customer_id,
            "purpose": purpose,
            "error": "",
        },
    )
