"""The console's backtest page in a real Chromium, against a real ``kairos console``.

A marketing-ops person opens a folder ``kairos backtest --out`` wrote (two days of 200
customers from ``kairos generate``) and sees its report and charts drawn; then uploads the
same events and profiles to run a backtest of a stored ruleset compared with the live one,
watches the progress bar reach 100 % and the result open by itself, and reads the
difference the change makes, drawn as a chart. The console runs on the embedded broker with
two deploys on its rules topic (made with ``kairos rules deploy``); no worker is needed.

``KAIROS_SCREENSHOTS_DIR=docs/console .venv/bin/pytest tests/browser/test_backtests.py``
refreshes ``docs/console/backtest.png`` and ``docs/console/backtest-compare.png``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.cli import main
from app.settings import EXAMPLE_RULES
from rules.language.loader import load_ruleset
from rules.offline.backtest import BacktestReport
from tests.browser.conftest import Screenshots
from tests.browser.console import StartConsole, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OPERATOR = "Bea Backtest"
# A run: a Python process's start, 5,000 events through two rulesets, chart.html written.
RUN_MS = 90_000
# The salary-wealth offer switched off, as a new version of the rule (deploy checks that).
WEALTH_ON = "    version: 1\n    owner: wealth-marketing"
WEALTH_OFF = "    version: 2\n    enabled: false\n    owner: wealth-marketing"


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    """Two days of 200 customers, as ``kairos generate --out`` writes them."""
    out = tmp_path / "traffic"
    assert main(["generate", "--out", str(out), "--customers", "200", "--days", "2"]) == 0
    return out


@pytest.fixture
def rulesets(tmp_path: Path) -> tuple[Path, Path]:
    """The example rules, and the same with the salary-wealth offer switched off."""
    base = tmp_path / "rules-base"
    shutil.copytree(EXAMPLE_RULES, base)
    changed = tmp_path / "rules-wealth-off"
    shutil.copytree(EXAMPLE_RULES, changed)
    wealth = changed / "salary_wealth.yaml"
    wealth.write_text(wealth.read_text().replace(WEALTH_ON, WEALTH_OFF, 1))
    shutil.rmtree(changed / "tests")  # the rule tests expect the offer
    return base, changed


def chart_traces(page: Page, selector: str) -> list[dict[str, Any]]:
    """The traces plotly.js drew in a chart container: name and data."""
    traces: list[dict[str, Any]] = page.locator(selector).evaluate(
        "node => (node.data || []).map(t => ({type: t.type, name: t.name ?? null,"
        " x: Array.from(t.x ?? []), y: Array.from(t.y ?? [])}))"
    )
    return traces


def expect_drawn(page: Page, selector: str) -> None:
    from playwright.sync_api import expect

    container = page.locator(selector)
    expect(container).to_have_attribute("data-drawn", re.compile(r"^[1-9]\d*$"))
    expect(container.locator(".main-svg").first).to_be_attached()
    expect(container.locator(".gtitle")).not_to_have_count(0)  # its title
    expect(container.locator(".xtitle")).not_to_have_count(0)  # and its axis titles


def test_open_a_backtest_folder_then_run_one_on_an_upload_and_read_the_difference(
    kairos: Callable[..., Any],
    start_console: StartConsole,
    page: Page,
    screenshot: Screenshots,
    traffic: Path,
    rulesets: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    base_path, changed_path = rulesets
    k = kairos(rules_path=base_path)
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    base, changed = load_ruleset(base_path).version, load_ruleset(changed_path).version
    assert main(["rules", "deploy", str(base_path), "--comment", "the examples"]) == 0
    assert main(["rules", "deploy", str(changed_path), "--comment", "wealth offer off"]) == 0

    # A folder written by kairos backtest --out, in the console's backtest directory.
    backtests = tmp_path / "backtests"
    inputs = [
        "--events",
        str(traffic / "events.jsonl"),
        "--profiles",
        str(traffic / "profiles.jsonl"),
    ]
    folder = backtests / "november-examples"
    assert main(["backtest", "--rules", str(base_path), *inputs, "--out", str(folder)]) == 0
    report = BacktestReport.model_validate_json((folder / "report.json").read_text())
    console = start_console(
        k,
        KAIROS_CONSOLE_BACKTEST_DIR=str(backtests),
        KAIROS_CONSOLE_BACKTEST_UPLOAD_MAX_MB="16",
    )

    sign_in(page, console, OPERATOR)
    page.get_by_test_id("nav-backtests").click()
    expect(page).to_have_url(re.compile(r"/backtests$"))
    row = page.locator('[data-testid="backtest-row"][data-name="november-examples"]')
    expect(row.get_by_test_id("backtest-kind")).to_have_text("report")
    expect(row.get_by_test_id("backtest-events")).to_have_text(f"{report.inputs.events:,}")

    # Open it: the report, and its charts drawn by plotly.js from the figures' JSON.
    row.get_by_test_id("backtest-link").click()
    expect(page).to_have_url(re.compile(r"/backtests/november-examples$"))
    expect(page.get_by_test_id("backtest-title")).to_have_text("november-examples")
    expect(page.get_by_test_id("inputs-events")).to_have_text(f"{report.inputs.events:,}")
    ruleset = page.get_by_test_id("ruleset")
    expect(ruleset.get_by_test_id("ruleset-version")).to_have_text(base)
    contacts = sum(report.contacts_by_channel.values())
    expect(ruleset.get_by_test_id("ruleset-figures").get_by_test_id("contacts")).to_contain_text(
        f"{contacts:,}"
    )
    expect(page.get_by_test_id("rule-row")).to_have_count(len(report.rules))
    for selector in (
        '[data-testid="chart-per-day"]',
        '[data-testid="chart-per-hour"]',
        '[data-testid="chart-per-rule"]',
        '[data-testid="chart-held-back"]',
    ):
        expect_drawn(page, selector)
    per_rule = chart_traces(page, '[data-testid="chart-per-rule"]')
    assert sum(sum(trace["y"]) for trace in per_rule) == contacts
    per_day = chart_traces(page, '[data-testid="chart-per-day"]')
    assert [trace["name"] for trace in per_day] == ["sms", "push", "rm"]
    assert any("(partial)" in day for day in per_day[0]["x"]), "the last day is not marked"
    expect(page.get_by_test_id("partial-days")).to_be_visible()
    screenshot(page, "backtest")

    # Run one on an upload: the stored base version compared with the live one.
    page.get_by_test_id("back-to-backtests").click()
    form = page.get_by_test_id("backtest-run-form")
    form.get_by_test_id("run-rules").select_option(base)
    form.get_by_test_id("run-compare").select_option("live")
    form.get_by_test_id("run-events").set_input_files(str(traffic / "events.jsonl"))
    form.get_by_test_id("run-profiles").set_input_files(str(traffic / "profiles.jsonl"))
    form.get_by_test_id("run-submit").click()
    expect(page).to_have_url(re.compile(r"/backtests/runs/[0-9a-f]{16}$"))
    run = page.get_by_test_id("backtest-run")
    expect(run.get_by_test_id("run-rules-label")).to_have_text(base)
    expect(run.get_by_test_id("run-compare-label")).to_have_text(f"live ({changed})")
    # The bar is followed live, and reaches 100 % once the folder is written ...
    expect(run.get_by_test_id("run-percent")).to_have_text("100 %", timeout=RUN_MS)
    expect(run.get_by_test_id("run-progress")).to_have_js_property("value", 100)
    expect(run.get_by_test_id("run-error")).to_be_hidden()
    # ... and then the result opens by itself: a comparison, with the difference drawn.
    expect(page).to_have_url(re.compile(r"/backtests/console-[\w.-]+$"), timeout=RUN_MS)
    result = page.get_by_test_id("backtest")
    expect(result).to_have_attribute("data-kind", "comparison")
    expect(page.get_by_test_id("ruleset-version")).to_have_text([base, changed])
    wealth = page.locator('[data-testid="diff-row"][data-rule-id="salary-wealth-offer"]')
    sent_before = next(r.sends for r in report.rules if r.rule_id == "salary-wealth-offer")
    assert sent_before > 0
    expect(wealth.get_by_test_id("sends-delta")).to_have_text(f"-{sent_before}")
    for selector in (
        '[data-testid="chart-difference-per-rule"]',
        '[data-testid="chart-difference-per-day"]',
        '[data-testid="chart-per-day"][data-ruleset-index="1"]',
    ):
        expect_drawn(page, selector)
    difference = chart_traces(page, '[data-testid="chart-difference-per-rule"]')
    sent = next(trace for trace in difference if trace["name"] == "contacts sent")
    change = dict(zip(sent["x"], sent["y"], strict=True))
    assert change["salary-wealth-offer"] == -sent_before
    assert all(v == 0 for rule, v in change.items() if rule != "salary-wealth-offer"), change
    # the new folder is listed with the others, and has what kairos backtest --out writes
    made = page.url.rsplit("/", 1)[1]
    assert sorted(p.name for p in (backtests / made).iterdir()) == sorted(
        [
            "report.json",
            "rules.csv",
            "daily.csv",
            "chart.html",
            "rules-other.csv",
            "daily-other.csv",
        ]
    )
    screenshot(page, "backtest-compare")
    page.get_by_test_id("nav-backtests").click()
    expect(page.locator(f'[data-testid="backtest-row"][data-name="{made}"]')).to_have_attribute(
        "data-kind", "comparison"
    )
