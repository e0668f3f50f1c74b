"""The console's web side over real HTTP (aiohttp's TestServer on 127.0.0.1), with fakes.

Sign-in is required on every route but the public ones (found by walking the router, so a
route added later is covered without editing this file); a wrong token or password gets
nothing; every POST without the session's CSRF token is refused with nothing done; a
customer look-up is audited before the workers are asked, and refused if it cannot be; no
customer id reaches the access log; the JSON endpoints answer the store's own numbers; a
rollback needs a confirmation and makes the CLI's checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.console.web import PUBLIC_PATHS, create_app
from schemas.deployment import LivePointer, PointerAction
from tests.app.console.fakes import (
    CUSTOMER,
    NOW,
    PASSWORD,
    ROWS,
    TOKEN,
    FakeCustomers,
    FakeRules,
    FakeStore,
    Harness,
    bundle,
    console_client,
    hidden,
    rules_file,
    two_deploys,
    users_file_entry,
)


def run(scenario: Callable[[Harness], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with console_client(**options) as harness:
            await scenario(harness)

    asyncio.run(main())


def _routes() -> list[tuple[str, str]]:
    """Every (method, concrete path) the application serves, from its router."""
    app = create_app(object())  # type: ignore[arg-type]  # only the routes are read
    routes = []
    for resource in app.router.resources():
        path = re.sub(r"\{[^}]+\}", "loan-dropoff-nudge", resource.canonical)
        if path == "/static":  # the static directory: ask for a file in it
            path = "/static/console.js"
        for route in resource:
            if route.method != "HEAD":
                routes.append((route.method, path))
    return routes


# --------------------------------------------------------------------------- sign-in


def test_every_route_but_the_public_ones_needs_a_session() -> None:
    routes = _routes()
    assert {path for _, path in routes} >= {
        "/campaigns",
        "/campaigns/loan-dropoff-nudge",
        "/deploys",
        "/customer",
        "/api/campaigns",
        "/api/deploys",
        "/deploys/rollback/confirm",
        "/static/vendor/plotly.min.js",
    }

    async def scenario(h: Harness) -> None:
        for method, path in routes:
            answer = await h.client.request(method, path, allow_redirects=False)
            body = await answer.read()
            if path in PUBLIC_PATHS:
                assert answer.status in (200, 403), f"{method} {path}: {answer.status}"
                continue
            if method == "GET" and not path.startswith(("/api/", "/static/")):
                assert answer.status == 303, f"{method} {path} answered {answer.status}"
                assert answer.headers["Location"] == "/login"
            else:
                assert answer.status == 401, f"{method} {path} answered {answer.status}"
            assert b"loan-dropoff-nudge" not in body and b"4321" not in body, path
        # No route: a 404, not a redirect (a browser's favicon request would otherwise take
        # the sign-in page's place, and with it the sign-in form's token).
        assert (await h.client.get("/favicon.ico", allow_redirects=False)).status == 404
        assert h.store.asked == [], "the store was asked before anyone signed in"
        assert h.customers.asked == [] and h.audit.entries == []
        assert h.rules.rollbacks == []

    run(scenario)


def test_the_right_token_signs_in_with_a_strict_http_only_cookie() -> None:
    async def scenario(h: Harness) -> None:
        form = await h.client.get("/login")
        csrf = hidden(await form.text(), "csrf")
        answer = await h.client.post(
            "/login",
            data={"method": "token", "name": "alice", "token": TOKEN, "csrf": csrf},
            allow_redirects=False,
        )
        assert answer.status == 303 and answer.headers["Location"] == "/campaigns"
        cookie = next(
            value
            for name, value in answer.headers.items()
            if name == "Set-Cookie" and value.startswith("kairos_console=")
        )
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        page = await h.client.get("/campaigns")
        assert page.status == 200
        assert 'data-testid="signed-in-as">alice (token)<' in await page.text()

    run(scenario)


@pytest.mark.parametrize(
    "form",
    [
        {"method": "token", "name": "mallory", "token": TOKEN[:-1] + "X"},
        {"method": "token", "name": "mallory", "token": ""},
        {"method": "password", "user": "carol", "password": PASSWORD + "!"},
        {"method": "password", "user": "nobody", "password": PASSWORD},
        {"method": "password", "user": "carol", "password": ""},
    ],
)
def test_a_wrong_token_or_password_gets_no_session(form: dict[str, str]) -> None:
    async def scenario(h: Harness) -> None:
        page = await h.client.get("/login")
        csrf = hidden(await page.text(), "csrf")
        answer = await h.client.post("/login", data={**form, "csrf": csrf}, allow_redirects=False)
        assert answer.status == 401
        assert "kairos_console=" not in " ".join(answer.headers.getall("Set-Cookie", []))
        assert 'data-testid="login-error"' in await answer.text()
        after = await h.client.get("/api/campaigns", allow_redirects=False)
        assert after.status == 401
        assert h.store.asked == []

    run(scenario, users=users_file_entry())


def test_a_user_of_the_users_file_signs_in_with_the_password() -> None:
    async def scenario(h: Harness) -> None:
        page = await h.client.get("/login")
        text = await page.text()
        assert 'data-testid="login-password-form"' in text
        assert 'data-testid="login-token-form"' not in text, "no token configured"
        answer = await h.client.post(
            "/login",
            data={
                "method": "password",
                "user": "carol",
                "password": PASSWORD,
                "csrf": hidden(text, "csrf"),
            },
            allow_redirects=False,
        )
        assert answer.status == 303
        page = await h.client.get("/campaigns")
        assert 'data-testid="signed-in-as">carol<' in await page.text()

    run(scenario, users=users_file_entry(), token=None)


def test_a_forged_or_signed_out_cookie_is_refused() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        jar = h.client.session.cookie_jar
        cookie = jar.filter_cookies(h.client.make_url("/"))["kairos_console"].value
        csrf = await h.csrf()
        out = await h.client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303 and out.headers["Location"] == "/login"
        jar.clear()
        payload, signature = cookie.split(".")
        forged = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB") + "." + signature
        # A copy of the cookie kept after signing out no longer works, nor does a forgery.
        for value in (cookie, forged, payload + ".", "garbage"):
            answer = await h.client.get(
                "/api/status", headers={"Cookie": f"kairos_console={value}"}
            )
            assert answer.status == 401, value

    run(scenario)


def test_a_valid_cookie_is_accepted_and_one_from_another_key_is_not() -> None:
    from app.console.auth import Sessions

    async def scenario(h: Harness) -> None:
        ours = h.console.sessions.issue("alice", "token")
        theirs = Sessions(b"x" * 32).issue("alice", "token")
        ok = await h.client.get("/api/status", headers={"Cookie": f"kairos_console={ours}"})
        assert ok.status == 200
        no = await h.client.get("/api/status", headers={"Cookie": f"kairos_console={theirs}"})
        assert no.status == 401

    run(scenario)


def test_sign_in_without_the_forms_csrf_token_is_refused() -> None:
    async def scenario(h: Harness) -> None:
        answer = await h.client.post(
            "/login",
            data={"method": "token", "name": "alice", "token": TOKEN},
            allow_redirects=False,
        )
        assert answer.status == 403
        assert (await h.client.get("/api/status")).status == 401

    run(scenario)


# --------------------------------------------------------------------------- CSRF


@pytest.mark.parametrize("csrf", [None, "", "not-the-token"])
def test_every_post_without_the_sessions_csrf_token_is_refused_and_does_nothing(
    csrf: str | None,
) -> None:
    posts = [path for method, path in _routes() if method == "POST" and path != "/login"]
    assert set(posts) == {
        "/logout",
        "/deploys/rollback",
        "/deploys/rollback/confirm",
        "/customer",
        "/backtests/runs",  # an upload: its token is read from the form's first field
    }

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        registry = h.rules.read()
        previous = registry.pointer.previous_version if registry.pointer else None
        for path in posts:
            data = {
                "customer_id": CUSTOMER,
                "to": previous or "",
                "expected_live": registry.live or "",
                "confirm": "yes",
            }
            if csrf is not None:
                data["csrf"] = csrf
            answer = await h.client.post(path, data=data, allow_redirects=False)
            assert answer.status == 403, f"{path} answered {answer.status}"
        assert h.audit.entries == [] and h.customers.asked == []
        assert h.rules.rollbacks == []
        assert (await h.client.get("/api/status")).status == 200, "still signed in"

    run(scenario)


# --------------------------------------------------------------------------- customer


def test_a_customer_look_up_is_posted_audited_and_shows_why() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in("alice") == 303
        csrf = await h.csrf()
        answer = await h.client.post(
            "/customer", data={"customer_id": CUSTOMER, "purpose": "ticket 12", "csrf": csrf}
        )
        page = await answer.text()
        assert answer.status == 200
        assert str(answer.url).endswith("/customer"), "the id is never in the address"
        (entry,) = h.audit.entries
        assert (entry.who, entry.customer_id, entry.at, entry.purpose) == (
            "alice (token)",
            CUSTOMER,
            NOW,
            "ticket 12",
        )
        assert entry.console == "test:6070" and entry.audit_id
        assert h.customers.asked == [CUSTOMER]
        assert 'data-reason="no_consent"' in page
        assert "no consent on any channel the rule may use" in page
        assert 'data-testid="profile-consent">none<' in page
        assert answer.headers["Cache-Control"] == "no-store"

    run(scenario)


def test_a_look_up_that_cannot_be_audited_is_not_made() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        h.audit.fail = True
        answer = await h.client.post(
            "/customer", data={"customer_id": CUSTOMER, "csrf": await h.csrf()}
        )
        assert answer.status == 503
        assert CUSTOMER not in await answer.text()
        assert h.customers.asked == [], "the workers were asked although nothing was audited"

    run(scenario)


def test_a_customer_the_workers_do_not_know_is_said_so() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        answer = await h.client.post(
            "/customer", data={"customer_id": CUSTOMER, "csrf": await h.csrf()}
        )
        page = await answer.text()
        assert 'data-testid="customer-not-found"' in page and "no state" in page
        assert len(h.audit.entries) == 1, "a look-up that finds nothing is audited too"

    run(scenario, customers=FakeCustomers(status=404))


def test_no_customer_id_reaches_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        csrf = await h.csrf()
        await h.client.post("/customer", data={"customer_id": CUSTOMER, "csrf": csrf})
        # Ids where no page takes them: typed into an address or a query by hand.
        await h.client.get(f"/customer?customer_id={CUSTOMER}")
        await h.client.get(f"/customers/{CUSTOMER}")
        await h.client.get(f"/campaigns/{CUSTOMER}")
        await h.client.get(f"/api/campaigns?window=7d&customer={CUSTOMER}")

    with caplog.at_level(logging.INFO, logger="kairos.console.access"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "kairos.console.access"]
    assert len(lines) >= 8, lines
    assert any("POST /customer 200" in line for line in lines), lines
    assert any("GET /campaigns/{rule_id} 404" in line for line in lines), lines
    assert not [line for line in lines if CUSTOMER in line]
    assert not [r for r in caplog.records if CUSTOMER in r.getMessage()]


# --------------------------------------------------------------------------- campaigns


def test_the_json_endpoints_answer_the_stores_numbers() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        for window in ("today", "7d", "30d", "all"):
            answer = await h.client.get(f"/api/campaigns?window={window}")
            body = await answer.json()
            assert answer.status == 200
            assert body["window"] == window and body["as_of"] == NOW.isoformat()
            assert body["rows"] == [row.model_dump(mode="json") for row in ROWS]
            assert body["status"] == {
                "records": 4321,
                "last_record_at": NOW.isoformat().replace("+00:00", "Z"),
                "lag": 7,
                "skipped": 0,
                "updated_at": None,
            }
        assert [a[1] for a in h.store.asked if a[0] == "campaigns"] == ["today", "7d", "30d", "all"]
        assert all(a[2] == NOW for a in h.store.asked), "asked at the console's clock"
        assert (await h.client.get("/api/campaigns?window=1y")).status == 400

        detail = await (await h.client.get("/api/campaigns/loan-dropoff-nudge")).json()
        assert detail["detail"]["row"]["uplift_ci95"] == [0.012, 0.188]
        assert detail["detail"]["local_hour"] == {"9": 40, "18": 40}
        assert detail["detail"]["contacts_per_day"][0] == {
            "day": "2026-11-29",
            "channel": "push",
            "contacts": 30,
        }
        assert (await h.client.get("/api/campaigns/no-such-rule")).status == 404

    run(scenario)


def test_the_campaigns_page_shows_each_number_where_tests_can_find_it() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        page = await (await h.client.get("/campaigns?window=30d")).text()
        row = page.split('data-rule-id="loan-dropoff-nudge"')[1].split("</tr>")[0]
        for testid, value in [
            ("fired", "120"),
            ("sent", "80"),
            ("sent-push", "50"),
            ("sent-sms", "30"),
            ("sent-rm", "0"),
            ("suppressed", "20"),
            ("held-out", "20"),
            ("converted", "12"),
        ]:
            assert f'data-testid="{testid}" data-value="{value}"' in row, testid
        assert "no_consent 17 · cooldown 3" in row
        assert "+10.0 pp" in row and "[+1.2, +18.8] pp" in row
        assert 'data-trend="0,1,4,9,12,8,7,10,11,6,3,2,5,2"' in row
        assert 'aria-current="true">30 days<' in page
        assert '<script src="/static/vendor/plotly.min.js">' in page

        one = await (await h.client.get("/campaigns/loan-dropoff-nudge")).text()
        for chart in ("contacts-per-day", "funnel", "suppressions", "local-hour", "uplift"):
            assert f'data-testid="chart-{chart}"' in one
        assert 'data-testid="rule-text">id: loan-dropoff-nudge' in one

    run(scenario)


def test_rule_ids_are_escaped_in_pages() -> None:
    from app.console.model import CampaignRow

    store = FakeStore([CampaignRow(rule_id="<script>alert(1)</script>")])

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        page = await (await h.client.get("/campaigns")).text()
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    run(scenario, store=store)


def test_plotly_is_served_from_the_installed_package_and_pages_forbid_other_origins() -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        js = await h.client.get("/static/vendor/plotly.min.js")
        assert js.status == 200 and len(await js.read()) > 1_000_000
        page = await h.client.get("/campaigns")
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["X-Frame-Options"] == "DENY"
        assert "http" not in re.sub(r'href="/[^"]*"', "", await page.text()).replace(
            "http-equiv", ""
        ), "a page refers to another origin"

    run(scenario)


# --------------------------------------------------------------------------- deploys


def test_the_deploys_page_shows_history_and_a_diff_between_any_two_versions() -> None:
    rules, first, second = two_deploys()

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        page = await (await h.client.get("/deploys")).text()
        assert f'data-testid="live-version">{second.version}<' in page
        assert page.count('data-testid="version-row"') == 2
        assert page.count('data-testid="history-row"') == 2
        assert "stop the nudge" in page and "launch" in page
        # The default diff is live against the version before it: the nudge was removed.
        assert 'data-testid="diff-removed"> - removed nudge v1<' in page
        # Any two versions, either way round.
        back = await (
            await h.client.get(f"/deploys?from={second.version}&to={first.version}")
        ).text()
        assert 'data-testid="diff-added"> + added nudge v1<' in back
        api = await (
            await h.client.get(f"/api/deploys/diff?from={second.version}&to={first.version}")
        ).json()
        assert api["added"] == ["nudge v1"] and api["removed"] == [] and api["unchanged"] == 1
        assert any(line.startswith("+  - id: nudge") for line in api["file_diff"])
        listing = await (await h.client.get("/api/deploys")).json()
        assert listing["live"] == second.version
        assert [v["version"] for v in listing["versions"] if v["live"]] == [second.version]
        missing = await h.client.get(f"/api/deploys/diff?from=rs-nope&to={first.version}")
        assert missing.status == 404

    run(scenario, rules=rules)


def test_a_rollback_is_confirmed_before_it_is_published() -> None:
    rules, first, second = two_deploys()

    async def scenario(h: Harness) -> None:
        assert await h.sign_in("alice") == 303
        csrf = await h.csrf("/deploys")
        step_one = await h.client.post("/deploys/rollback", data={"to": "", "csrf": csrf})
        page = await step_one.text()
        assert step_one.status == 200
        assert f'data-testid="confirm-target">{first.version}<' in page
        assert 'data-testid="diff-added"> + added nudge v1<' in page, "what it changes is shown"
        assert rules.rollbacks == [], "nothing is published before the confirmation"
        confirm = {
            "to": hidden(page, "to"),
            "expected_live": hidden(page, "expected_live"),
            "confirm": "yes",
            "csrf": csrf,
        }
        assert confirm["expected_live"] == second.version
        step_two = await h.client.post(
            "/deploys/rollback/confirm", data=confirm, allow_redirects=False
        )
        assert step_two.status == 303
        assert step_two.headers["Location"] == f"/deploys?rolled_back={first.version}"
        assert rules.rollbacks == [(first.version, "alice (token)@console")]
        after = await (await h.client.get(step_two.headers["Location"])).text()
        assert f'data-testid="live-version">{first.version}<' in after
        # The same confirmation again is stale: the live version moved since.
        again = await h.client.post("/deploys/rollback/confirm", data=confirm)
        assert again.status == 409 and len(rules.rollbacks) == 1

    run(scenario, rules=rules)


def test_a_rollback_the_cli_would_refuse_is_refused() -> None:
    only = bundle({"rules.yaml": rules_file("welcome")}, "ann")
    broken = bundle({"rules.yaml": rules_file("welcome", "nudge")}, "ann")
    broken = broken.model_copy(update={"files": {"rules.yaml": "rules: [ {id: x"}})
    rules = FakeRules(
        only,
        broken,
        LivePointer(version=only.version, action=PointerAction.DEPLOY, at=NOW, by="ann"),
    )

    async def scenario(h: Harness) -> None:
        assert await h.sign_in() == 303
        csrf = await h.csrf("/deploys")
        first = await h.client.post("/deploys/rollback", data={"to": "", "csrf": csrf})
        text = await first.text()
        assert first.status == 409 and "first deployed version" in text
        compiled = await h.client.post(
            "/deploys/rollback", data={"to": broken.version, "csrf": csrf}
        )
        assert compiled.status == 409 and "does not compile" in await compiled.text()
        forced = await h.client.post(
            "/deploys/rollback/confirm",
            data={
                "to": broken.version,
                "expected_live": only.version,
                "confirm": "yes",
                "csrf": csrf,
            },
        )
        assert forced.status == 409, "the confirm step checks again"
        assert rules.rollbacks == []

    run(scenario, rules=rules)


def test_healthz_is_public_and_says_how_far_the_store_has_read() -> None:
    async def scenario(h: Harness) -> None:
        answer = await h.client.get("/healthz")
        body = await answer.json()
        assert answer.status == 200 and body["status"] == "alive"
        assert body["store"]["records"] == 4321

    run(scenario)
