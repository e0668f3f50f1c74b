"""The console in a real Chromium, against a real worker and a real ``kairos console``.

Each test runs what the demo runs: the embedded broker, a ``kairos worker`` on its own topics
and a ``kairos console`` process (``app.kafka.ConsoleProcess``, stopped by PID), and drives
the pages as a marketing-ops person would: sign in, watch a campaign's numbers move while
traffic arrives, open the campaign and its charts, look a customer up to read why they were
suppressed, compare two deploys and roll back, confirming first. Every wait is on the page
or the pipeline (Playwright's expectations poll the DOM), never a sleep.

``KAIROS_SCREENSHOTS_DIR=docs/console .venv/bin/pytest tests/browser/test_console.py``
refreshes the screenshots in ``docs/console/``.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.cli import main
from app.kafka.processes import ConsoleProcess
from rules.engine import in_holdout
from rules.language.loader import load_ruleset
from testkit.factories import click, daytime_zone, feedback, profile
from tests.browser.conftest import Screenshots
from tests.browser.console import StartConsole, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CUSTOMER_API_TOKEN = "customer-api-token-for-the-browser-tests"
OPERATOR = "Ana Ops"
# The pipeline is a few hops long (event -> worker -> decisions topic -> console store ->
# JSON -> DOM): generous, since the wait ends as soon as the page shows the number.
PIPELINE_MS = 60_000

RULES = """
rules:
  - id: offer
    version: 1
    event: app_click
    when: 'event.screen == "offer"'
    channels: [push, sms]
    template: offer_push
"""

# The campaigns test's rule also holds half its customers out and watches for a goal, so the
# page has treated and holdout conversions and an uplift with its interval to show.
CAMPAIGN_RULES = (
    RULES
    + """\
    holdout: 50
    goal:
      event: app_click
      when: 'event.screen == "offer_accepted"'
      within: 1d
"""
)

WELCOME_RULE = """
rules:
  - id: welcome-back
    version: 1
    event: app_click
    when: 'event.screen == "home"'
    channels: [push]
    template: welcome_back
"""

NO_CONSENT = {"sms": False, "push": False, "rm": False}


def kairos_with_console(
    kairos: Callable[..., Any], start_console: StartConsole, rules: str = RULES
) -> tuple[Any, Any, ConsoleProcess]:
    """A worker on the test's own topics with the customer API on, and a console beside it."""
    k = kairos(rules_yaml=rules, KAIROS_CUSTOMER_API_TOKEN=CUSTOMER_API_TOKEN)
    worker = k.start_worker()
    return k, worker, start_console(k, KAIROS_CONSOLE_WORKER_URLS=worker.base_url)


def campaign_cell(page: Page, rule_id: str, testid: str) -> Locator:
    row = page.locator(f'[data-testid="campaign-row"][data-rule-id="{rule_id}"]')
    return row.get_by_test_id(testid)


def chart_traces(page: Page, testid: str) -> list[dict[str, Any]]:
    """The traces plotly.js drew in a chart container: its type, name and data."""
    traces: list[dict[str, Any]] = page.get_by_test_id(testid).evaluate(
        "node => (node.data || []).map(t => ({type: t.type, name: t.name ?? null,"
        " x: Array.from(t.x ?? []), y: Array.from(t.y ?? []),"
        " error_bar: Boolean(t.error_y && t.error_y.array)}))"
    )
    return traces


def send_clicks(
    k: Any, customers: list[str], consent: dict[str, bool] | None = None, screen: str = "offer"
) -> None:
    """Profiles (consenting unless ``consent`` says otherwise), then one click each."""
    extra = {} if consent is None else {"consent": consent}
    k.send_profiles(*(profile(c, timezone=daytime_zone(), **extra) for c in customers))
    for customer in customers:
        k.send(k.topics.app_click, click(customer, screen=screen))


def split_by_holdout(rule_id: str, percent: float, treated: int, held_out: int) -> list[str]:
    """Customer ids the rule's stable holdout assignment puts ``treated`` in, ``held_out`` out."""
    chosen: dict[bool, list[str]] = {False: [], True: []}
    wanted = {False: treated, True: held_out}
    for n in range(1, 1000):
        customer = f"C-OK-{n}"
        group = in_holdout(customer, rule_id, percent)
        if len(chosen[group]) < wanted[group]:
            chosen[group].append(customer)
        if all(len(chosen[g]) == wanted[g] for g in chosen):
            break
    return chosen[False] + chosen[True]


def test_sign_in_then_campaign_numbers_move_and_the_campaign_draws_its_charts(
    kairos: Callable[..., Any],
    start_console: StartConsole,
    page: Page,
    screenshot: Screenshots,
) -> None:
    from playwright.sync_api import expect

    k, _worker, console = kairos_with_console(kairos, start_console, rules=CAMPAIGN_RULES)

    # Signed out, every page leads to the sign-in form; a wrong token is refused.
    page.goto(console.base_url + "/campaigns")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_test_id("login-name").fill(OPERATOR)
    page.get_by_test_id("login-token").fill("not-the-token-at-all-0000")
    page.get_by_test_id("login-token-submit").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong token")
    page.get_by_test_id("login-name").fill(OPERATOR)  # the form comes back empty
    screenshot(page, "login")
    sign_in(page, console, OPERATOR)
    expect(page.get_by_test_id("campaigns-empty")).to_be_visible()

    # The page refreshes itself: mark this very document, then send traffic.
    page.evaluate("window.__sameDocument = true")
    treated_1, treated_2, treated_3, held_1, held_2 = split_by_holdout("offer", 50, 3, 2)
    send_clicks(k, [treated_1, treated_2, treated_3, held_1, held_2])
    expect(campaign_cell(page, "offer", "fired")).to_have_attribute(
        "data-value", "5", timeout=PIPELINE_MS
    )
    expect(campaign_cell(page, "offer", "sent-push")).to_have_attribute("data-value", "3")
    expect(campaign_cell(page, "offer", "held-out")).to_have_attribute("data-value", "2")
    expect(campaign_cell(page, "offer", "suppressed")).to_have_attribute("data-value", "0")

    # More traffic, two of it without consent: the same row moves again.
    send_clicks(k, ["C-NO-1", "C-NO-2"], consent=NO_CONSENT)
    expect(campaign_cell(page, "offer", "fired")).to_have_attribute(
        "data-value", "7", timeout=PIPELINE_MS
    )
    expect(campaign_cell(page, "offer", "suppressed")).to_have_attribute("data-value", "2")
    expect(campaign_cell(page, "offer", "suppressed-reasons")).to_contain_text("no_consent 2")
    expect(campaign_cell(page, "offer", "sent")).to_have_attribute("data-value", "3")

    # The channel reports back: all three pushes delivered, one opened.
    sent = [
        value
        for _, value in k.collect(
            [k.topics.decisions],
            until=lambda records: sum(v["outcome"] == "sent" for _, v in records) >= 3,
        )
        if value["outcome"] == "sent"
    ]
    for made in sent:
        k.send(k.topics.feedback, feedback(made, "delivered"))
    k.send(k.topics.feedback, feedback(sent[0], "opened"))
    expect(campaign_cell(page, "offer", "delivered")).to_have_text(
        re.compile(r"^\s*3\s+100\.0 %\s*$"), timeout=PIPELINE_MS
    )
    expect(campaign_cell(page, "offer", "engaged")).to_have_text(
        re.compile(r"^\s*1\s+33\.3 %\s*$"), timeout=PIPELINE_MS
    )

    # Goals reached by two treated customers and one held out: conversions and the uplift.
    for customer in (treated_1, treated_2, held_1):
        k.send(k.topics.app_click, click(customer, screen="offer_accepted"))
    expect(campaign_cell(page, "offer", "converted")).to_have_text(
        re.compile(r"^\s*2 / 1\s*$"), timeout=PIPELINE_MS
    )
    expect(campaign_cell(page, "offer", "uplift")).to_contain_text("+16.7 pp")
    expect(campaign_cell(page, "offer", "uplift-ci")).to_have_text(
        re.compile(r"^\[[-+]\d+\.\d, [-+]\d+\.\d\] pp$")
    )
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded to update"
    expect(campaign_cell(page, "offer", "sparkline").locator(".main-svg").first).to_be_attached()
    expect(page.get_by_test_id("store-records")).not_to_have_text("0")
    screenshot(page, "campaigns")

    # One campaign: its figures and five charts, drawn by plotly.js from the store.
    campaign_cell(page, "offer", "campaign-link").click()
    expect(page).to_have_url(re.compile(r"/campaigns/offer$"))
    expect(page.get_by_test_id("campaign-title")).to_contain_text("offer")
    figures = page.get_by_test_id("campaign-figures")
    expect(figures.get_by_test_id("fired")).to_have_text("7")
    expect(figures.get_by_test_id("sent")).to_have_text("3")
    expect(figures.get_by_test_id("suppressed")).to_have_text("2")
    expect(figures.get_by_test_id("held-out")).to_have_text("2")
    for chart in (
        "chart-contacts-per-day",
        "chart-funnel",
        "chart-suppressions",
        "chart-local-hour",
        "chart-uplift",
    ):
        container = page.get_by_test_id(chart)
        expect(container.locator(".main-svg").first).to_be_attached()
        expect(container).to_have_attribute("data-drawn", re.compile(r"^[1-9]\d*$"))
    # The charts hold the data, not just axes: three push contacts, the two no-consent
    # suppressions by name, the funnel from the seven decisions down to two conversions, and
    # treated against holdout conversion with the uplift's interval drawn as an error bar.
    contacts = chart_traces(page, "chart-contacts-per-day")
    assert [(t["type"], t["name"], sum(t["y"])) for t in contacts] == [("bar", "PUSH", 3)]
    expect(
        page.get_by_test_id("chart-contacts-per-day").locator(".bars path").first
    ).to_be_attached()
    [suppressions] = chart_traces(page, "chart-suppressions")
    assert (suppressions["y"], suppressions["x"]) == (["no_consent"], [2])
    expect(page.get_by_test_id("chart-suppressions").locator(".ytick text")).to_have_text(
        ["no_consent"]
    )
    [funnel] = chart_traces(page, "chart-funnel")
    assert (funnel["type"], funnel["x"]) == ("funnel", [7, 3, 3, 1, 2])
    [hours] = chart_traces(page, "chart-local-hour")
    assert sum(hours["y"]) == 3  # every contact at some local hour of its customer
    rates, uplift = chart_traces(page, "chart-uplift")
    assert rates["x"] == ["treated", "holdout"]
    assert [round(y, 1) for y in rates["y"]] == [66.7, 50.0]
    assert uplift["x"] == ["uplift"] and round(uplift["y"][0], 1) == 16.7
    assert uplift["error_bar"], "the uplift's 95 % interval is not drawn"
    screenshot(page, "campaign")


def test_a_customer_look_up_says_why_they_were_suppressed(
    kairos: Callable[..., Any],
    start_console: StartConsole,
    page: Page,
    screenshot: Screenshots,
) -> None:
    from playwright.sync_api import expect

    k, worker, console = kairos_with_console(kairos, start_console)
    customer = "C-NEVER-ASKED"
    send_clicks(k, [customer], consent=NO_CONSENT)
    assert worker.wait_metric("kairos_suppressions_total", 1, reason="no_consent") == 1

    sign_in(page, console, "Sam Support")
    page.get_by_test_id("nav-customer").click()
    expect(page).to_have_url(re.compile(r"/customer$"))
    suppressed = page.locator('[data-testid="timeline-entry"][data-outcome="suppressed"]')
    # The worker writes the customer's state just after the decision's outputs are
    # acknowledged, and the console's store reads the decision from its topic a moment
    # later; the page does not refresh on its own (a look-up is an audited act), so look
    # again until the store's whole record of the decision is there.
    deadline = time.monotonic() + 30
    while True:
        page.get_by_test_id("customer-id").fill(customer)
        page.get_by_test_id("customer-purpose").fill("complaint: never heard about the offer")
        page.get_by_test_id("customer-submit").click()
        expect(page.get_by_test_id("customer-result")).to_have_attribute("data-found", "true")
        stored = suppressed.and_(page.locator('[data-source="store"]'))
        if stored.count() or time.monotonic() > deadline:
            break
    expect(suppressed).to_have_count(1)  # the worker's note and the store's record: one entry
    expect(suppressed).to_have_attribute("data-source", "store")
    expect(suppressed).to_have_attribute("data-reason", "no_consent")
    expect(suppressed.get_by_test_id("entry-reason-code")).to_have_text("no_consent")
    expect(suppressed).to_contain_text("offer")
    expect(suppressed.get_by_test_id("entry-detail")).to_contain_text("consent")
    # why, as the worker wrote it, and the evidence: what the rule's condition read
    expect(suppressed.get_by_test_id("entry-reason-text")).to_contain_text("no consent")
    expect(suppressed.get_by_test_id("evidence-name")).to_have_text(["event.screen"])
    expect(suppressed.get_by_test_id("evidence-value")).to_have_text(["offer"])
    expect(suppressed.get_by_test_id("entry-trigger")).to_have_count(1)
    expect(page.get_by_test_id("customer-shown-id")).to_have_text(customer)
    assert customer not in page.url  # the id travels in the form's body, never in the address
    screenshot(page, "customer")

    # Every look-up is audited to a topic: who looked at which customer.
    audits = k.collect(
        [k.topics.console_audit],
        until=lambda records: any(v.get("customer_id") == customer for _, v in records),
    )
    looked = [v for _, v in audits if v.get("customer_id") == customer]
    assert looked, "the look-up was not audited"
    assert all("Sam Support" in entry["who"] for entry in looked), looked


def _deploy(*argv: str) -> None:
    assert main(["rules", "deploy", *argv]) == 0, f"kairos rules deploy {' '.join(argv)} failed"


def test_deploys_are_compared_and_rolled_back_only_once_confirmed(
    kairos: Callable[..., Any],
    start_console: StartConsole,
    page: Page,
    screenshot: Screenshots,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    k, worker, console = kairos_with_console(kairos, start_console)
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    baseline_path = Path(k.env["KAIROS_RULES_PATH"])
    launch_path = tmp_path / "welcome-launch"
    shutil.copytree(baseline_path, launch_path)
    (launch_path / "welcome.yaml").write_text(WELCOME_RULE.lstrip())
    baseline, launch = load_ruleset(baseline_path).version, load_ruleset(launch_path).version
    _deploy(str(baseline_path), "--comment", "baseline")
    _deploy(str(launch_path), "--comment", "welcome-back launch")
    assert worker.wait_metric("kairos_ruleset_info", 1, version=launch) == 1

    sign_in(page, console, "Lee Lead")
    page.get_by_test_id("nav-deploys").click()
    expect(page.get_by_test_id("live-version")).to_have_text(launch)
    rows = page.get_by_test_id("version-row")
    expect(rows).to_have_count(2)
    launch_row = page.locator(f'[data-testid="version-row"][data-version="{launch}"]')
    expect(launch_row.get_by_test_id("live-badge")).to_be_visible()
    expect(launch_row.get_by_test_id("comment")).to_have_text("welcome-back launch")

    # The diff between the two deploys, asked for explicitly.
    page.get_by_test_id("diff-from").select_option(baseline)
    page.get_by_test_id("diff-to").select_option(launch)
    page.get_by_test_id("diff-submit").click()
    diff = page.get_by_test_id("diff")
    expect(diff).to_have_attribute("data-from", baseline)
    expect(diff).to_have_attribute("data-to", launch)
    expect(diff.get_by_test_id("diff-added")).to_have_text(re.compile(r"welcome-back"))
    expect(diff.get_by_test_id("diff-removed")).to_have_count(0)
    expect(diff.get_by_test_id("diff-unchanged")).to_contain_text("1 rule(s) unchanged")
    screenshot(page, "deploys")

    # A rollback posted without the page's CSRF token is refused and changes nothing.
    forged = page.request.post(
        console.base_url + "/deploys/rollback/confirm",
        form={"to": baseline, "expected_live": launch, "confirm": "yes"},
        max_redirects=0,
    )
    assert forged.status == 403
    # The rollback button only asks: a confirmation naming both versions and the change.
    page.get_by_test_id("rollback-previous").click()
    confirmation = page.get_by_test_id("rollback-confirmation")
    expect(confirmation.get_by_test_id("confirm-live")).to_have_text(launch)
    expect(confirmation.get_by_test_id("confirm-target")).to_have_text(baseline)
    expect(confirmation.get_by_test_id("diff-removed")).to_have_text(re.compile(r"welcome-back"))
    screenshot(page, "rollback-confirm")
    page.get_by_test_id("rollback-cancel").click()
    expect(page.get_by_test_id("live-version")).to_have_text(launch)
    assert worker.metric("kairos_ruleset_info", version=launch) == 1  # nothing happened

    page.get_by_test_id("rollback-previous").click()
    page.get_by_test_id("rollback-confirm").click()
    expect(page.get_by_test_id("rolled-back")).to_contain_text(baseline)
    expect(page.get_by_test_id("live-version")).to_have_text(baseline)
    history = page.locator(f'[data-testid="history-row"][data-version="{baseline}"]')
    expect(history.get_by_test_id("history-action").first).to_contain_text("rollback")
    expect(history.get_by_test_id("history-by").first).to_contain_text("Lee Lead")
    # ... and the running worker swapped to it, between two events, without a restart.
    assert worker.wait_metric("kairos_ruleset_info", 1, version=baseline) == 1
    screenshot(page, "deploys-rolled-back")
