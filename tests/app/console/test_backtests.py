"""The console's backtest page over real HTTP: folders listed and opened, runs on uploads.

The folders are real ``kairos backtest --out`` folders (a single ruleset, and one with
``--compare``) on traffic from ``kairos generate``; the runs are real ``backtest_job``
processes on the same traffic, against real bundles in a rules topic held in memory. What
is proved: only folders directly in the backtest directory are listed or opened, whatever
the name, path or link says; a folder's page shows its report and serves the very figures
``chart.html`` draws; an upload needs the session's CSRF token before any file is read, and
is bounded; a run's progress is a JSON endpoint that ends at 100 % once its folder is
written, with exactly the files ``kairos backtest --out`` writes for the same inputs and
rules; one run at a time, and a stopped console stops its run and deletes its inputs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from yarl import URL

from app.backtest.chart import charts, figure_json, named_reports
from app.cli import main
from app.console.audit import ListAuditSink
from app.console.auth import Credentials, Sessions
from app.console.backtest_job import INPUTS, RunProgress
from app.console.backtests import RUNS, Backtests
from app.console.deploys import RegistryReader
from app.console.run import backtest_dir
from app.console.web import Console, ConsoleOptions, create_app, runner_options
from app.settings import EXAMPLE_RULES, Settings
from rules.deployments import compile_files
from rules.offline.backtest import BacktestReport
from rules.offline.compare import BacktestDiff
from schemas.deployment import LivePointer, PointerAction, RulesetBundle
from tests.app.console.fakes import NOW, TOKEN, FakeCustomers, FakeRules, FakeStore, Harness, hidden

OUTSIDE_MARKER = "this-must-never-be-served"
RUN_TIMEOUT_S = 90.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of 200 customers, written by ``kairos generate --out``."""
    out = tmp_path_factory.mktemp("traffic")
    assert main(["generate", "--out", str(out), "--customers", "200", "--days", "2"]) == 0
    return out


def _rules_dir(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example rules, and the same with salary-wealth-offer disabled."""
    root = tmp_path_factory.mktemp("rulesets")
    files, _ = compile_files(EXAMPLE_RULES)
    base = _rules_dir(root / "base", files)
    changed = dict(files)
    wealth = changed["salary_wealth.yaml"]
    changed["salary_wealth.yaml"] = wealth.replace(
        "    version: 1\n    owner:", "    version: 2\n    enabled: false\n    owner:", 1
    )
    assert changed["salary_wealth.yaml"] != wealth
    return base, _rules_dir(root / "changed", changed)


def _bundle(path: Path, by: str, comment: str) -> RulesetBundle:
    files, ruleset = compile_files(path)
    return RulesetBundle(
        version=ruleset.version, files=files, deployed_at=NOW, deployed_by=by, comment=comment
    )


def _topic(rulesets: tuple[Path, Path]) -> tuple[FakeRules, RulesetBundle, RulesetBundle]:
    """Both rulesets stored; the changed one live."""
    base = _bundle(rulesets[0], "ann", "the examples")
    changed = _bundle(rulesets[1], "bob", "wealth offer off")
    rules = FakeRules(
        base,
        LivePointer(version=base.version, action=PointerAction.DEPLOY, at=NOW, by="ann"),
        changed,
        LivePointer(
            version=changed.version,
            previous_version=base.version,
            action=PointerAction.DEPLOY,
            at=NOW,
            by="bob",
        ),
    )
    return rules, base, changed


def _backtest_out(out: Path, rules: Path, traffic: Path, *extra: str) -> Path:
    args = [
        "--events",
        str(traffic / "events.jsonl"),
        "--profiles",
        str(traffic / "profiles.jsonl"),
    ]
    code = main(["backtest", "--rules", str(rules), *args, "--out", str(out), *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, traffic: Path, rulesets: tuple[Path, Path]
) -> Path:
    """A backtest directory: a report, a comparison, and things that must not be opened."""
    root = tmp_path_factory.mktemp("backtests")
    base, changed = rulesets
    _backtest_out(root / "nov-examples", base, traffic)
    _backtest_out(root / "nov-wealth-off", base, traffic, "--compare", str(changed))
    (root / "notes").mkdir()  # no report.json: not a backtest folder
    (root / "notes" / "readme.txt").write_text("not a backtest")
    (root / "broken").mkdir()
    (root / "broken" / "report.json").write_text('{"ruleset_version": 3}')
    # A folder outside the directory, with a report of its own, and a link to it inside.
    outside = tmp_path_factory.mktemp("outside") / "secret-run"
    _backtest_out(outside, base, traffic)
    (outside / "rules.csv").write_text(OUTSIDE_MARKER)
    (outside / "report.json").write_text(
        (outside / "report.json").read_text().replace("rs-", f"{OUTSIDE_MARKER}-rs-", 1)
    )
    (root / "linked-out").symlink_to(outside, target_is_directory=True)
    # A folder of its own whose rules.csv is a link to the outside one.
    sneaky = _backtest_out(root / "sneaky", base, traffic)
    (sneaky / "rules.csv").unlink()
    (sneaky / "rules.csv").symlink_to(outside / "rules.csv")
    hidden_run = root / RUNS / "0123456789abcdef"
    hidden_run.mkdir(parents=True)
    (hidden_run / "report.json").write_text("{}")
    return root


@asynccontextmanager
async def backtest_client(
    root: Path,
    rules: FakeRules,
    max_upload_bytes: int = 32 * 2**20,
    python: str = sys.executable,
    bootstrap: Path | None = None,
) -> AsyncIterator[Harness]:
    """The real console application with a real backtest directory, signed in."""
    backtests = Backtests.at(root, max_upload_bytes, bootstrap_rules=bootstrap, python=python)
    store, customers, audit = FakeStore(), FakeCustomers(), ListAuditSink()
    console = Console(
        store=store,
        rules=RegistryReader(rules, max_age_s=0.0),
        customers=customers,
        audit=audit,
        credentials=Credentials(SecretStr(TOKEN), None),
        sessions=Sessions(b"k" * 32),
        options=ConsoleOptions(refresh_s=2.0, name="test:6070"),
        backtests=backtests,
        clock=lambda: NOW,
    )
    server = TestServer(create_app(console), host="127.0.0.1")
    await server.start_server(**runner_options())
    try:
        async with TestClient(server) as client:
            harness = Harness(client, console, store, rules, customers, audit)
            assert await harness.sign_in() == 303
            yield harness
    finally:
        backtests.close()


def run(scenario: Callable[[Harness], Awaitable[None]], root: Path, **options: Any) -> None:
    rules = options.pop("rules", None) or FakeRules()

    async def body() -> None:
        async with backtest_client(root, rules, **options) as harness:
            await scenario(harness)

    asyncio.run(body())


def _testids(page: str, testid: str) -> list[str]:
    """The data-name (or data-chart-id) of each element with that data-testid."""
    import re

    found = []
    for tag in re.findall(rf'<[^>]*data-testid="{testid}"[^>]*>', page):
        match = re.search(r'data-(?:name|chart-id)="([^"]*)"', tag)
        found.append(match.group(1) if match else "")
    return found


# --------------------------------------------------------------------------- folders


def test_the_list_shows_only_the_backtest_folders_directly_in_the_directory(
    prepared: Path,
) -> None:
    async def scenario(h: Harness) -> None:
        page = await h.client.get("/backtests")
        assert page.status == 200
        text = await page.text()
        assert 'data-testid="nav-backtests"' in text
        listed = _testids(text, "backtest-row")
        assert sorted(listed) == ["broken", "nov-examples", "nov-wealth-off", "sneaky"]
        assert OUTSIDE_MARKER not in text  # the link out is not followed
        assert 'data-testid="backtest-problem">broken/report.json is not a report' in text
        api = await (await h.client.get("/api/backtests")).json()
        kinds = {f["name"]: f["kind"] for f in api["folders"]}
        assert kinds == {
            "nov-examples": "report",
            "nov-wealth-off": "comparison",
            "broken": None,
            "sneaky": "report",
        }
        compared = next(f for f in api["folders"] if f["name"] == "nov-wealth-off")
        assert len(compared["rulesets"]) == 2 and compared["events"] > 1000

    run(scenario, prepared)


def test_a_folder_opens_with_its_report_and_the_figures_chart_html_draws(prepared: Path) -> None:
    report = BacktestReport.model_validate_json((prepared / "nov-examples/report.json").read_text())

    async def scenario(h: Harness) -> None:
        page = await h.client.get("/backtests/nov-examples")
        assert page.status == 200
        text = await page.text()
        assert 'data-testid="backtest" data-name="nov-examples" data-kind="report"' in text
        assert f'data-testid="inputs-events">{report.inputs.events:,}<' in text
        for rule in report.rules:
            assert f'data-testid="rule-row" data-rule-id="{rule.rule_id}"' in text
        assert f'data-testid="ruleset-version">{report.ruleset_version}<' in text
        for file in ("report.json", "rules.csv", "daily.csv", "chart.html"):
            assert f'data-file="{file}"' in text
        assert "<script>" not in text  # the CSP forbids inline script; charts come as JSON
        slots = set(_testids(text, "chart-per-day") + _testids(text, "chart-per-hour"))
        slots |= set(_testids(text, "chart-per-rule") + _testids(text, "chart-held-back"))

        drawn = await (await h.client.get("/api/backtests/nov-examples")).json()
        assert drawn["kind"] == "report"
        # The same figures as chart.html's, from the same builders, with a place on the page.
        expected = [figure_json(c) for c in charts(named_reports(report)).all()]
        assert [c["id"] for c in drawn["charts"]] == [c["id"] for c in expected]
        assert {c["id"] for c in drawn["charts"]} == slots
        assert [c["data"] for c in drawn["charts"]] == [c["data"] for c in expected]
        per_rule = next(c for c in drawn["charts"] if c["kind"] == "per-rule")
        assert per_rule["layout"]["xaxis"]["title"]["text"] == "rule"
        sends = sum(sum(trace["y"]) for trace in per_rule["data"])
        assert sends == sum(report.contacts_by_channel.values())
        chart_html = (prepared / "nov-examples/chart.html").read_text()
        assert chart_html.count("Plotly.newPlot(") == len(drawn["charts"])

        download = await h.client.get("/backtests/nov-examples/files/rules.csv")
        assert download.status == 200
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert await download.text() == (prepared / "nov-examples/rules.csv").read_text()

    run(scenario, prepared)


def test_a_comparison_opens_with_the_difference_drawn(prepared: Path) -> None:
    diff = BacktestDiff.model_validate_json((prepared / "nov-wealth-off/report.json").read_text())

    async def scenario(h: Harness) -> None:
        text = await (await h.client.get("/backtests/nov-wealth-off")).text()
        assert 'data-kind="comparison"' in text
        assert 'data-testid="chart-difference-per-rule"' in text
        assert 'data-testid="diff-row" data-rule-id="salary-wealth-offer"' in text
        drawn = await (await h.client.get("/api/backtests/nov-wealth-off")).json()
        by_id = {c["id"]: c for c in drawn["charts"]}
        assert {"per-day-0", "per-day-1", "difference-per-rule", "difference-per-day"} <= set(by_id)
        sent = next(t for t in by_id["difference-per-rule"]["data"] if t["name"] == "contacts sent")
        change = dict(zip(sent["x"], sent["y"], strict=True))
        before = {r.rule_id: r.sends for r in diff.base.rules}
        assert before["salary-wealth-offer"] > 0
        assert change["salary-wealth-offer"] == -before["salary-wealth-offer"]

    run(scenario, prepared)


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/backtests/..", {400, 404}),
        ("/backtests/%2e%2e", {400, 404}),
        ("/backtests/..%2F..%2Fetc", {400, 404}),
        ("/backtests/.runs", {400}),
        ("/backtests/linked-out", {400}),
        ("/backtests/notes", {404}),
        ("/api/backtests/linked-out", {400}),
        ("/api/backtests/..", {400, 404}),
        ("/backtests/nov-examples/files/..%2F..%2Flinked-out%2Frules.csv", {400, 404}),
        ("/backtests/nov-examples/files/job.log", {400}),
        ("/backtests/linked-out/files/rules.csv", {400}),
        ("/backtests/sneaky/files/rules.csv", {404}),
        ("/backtests/sneaky", {200}),  # opens, without the linked file
        ("/backtests?folder=../outside", {400}),
        ("/backtests?folder=/etc", {400}),
        ("/backtests?folder=nov-examples/../../outside", {400}),
        ("/backtests?folder=linked-out", {400}),
        ("/backtests?folder=.runs/0123456789abcdef", {400}),
        ("/backtests?folder=nov-examples%2F%00", {400}),
        ("/backtests?folder=" + "a/" * 3000, {400}),
        ("/backtests/nov%00examples", {400}),
    ],
)
def test_nothing_outside_the_backtest_directory_is_opened(
    prepared: Path, path: str, statuses: set[int]
) -> None:
    async def scenario(h: Harness) -> None:
        # sent as written: the client would otherwise resolve the dots itself
        raw = URL(str(h.client.make_url("")).rstrip("/") + path, encoded=True)
        answer = await h.client.session.get(raw, allow_redirects=False)
        body = await answer.text()
        assert answer.status in statuses, (path, answer.status, body[:300])
        assert OUTSIDE_MARKER not in body
        assert "root:" not in body  # /etc/passwd

    run(scenario, prepared)


def test_the_open_form_takes_a_name_or_a_path_in_the_directory(prepared: Path) -> None:
    async def scenario(h: Harness) -> None:
        for given in ("nov-examples", str(prepared / "nov-examples"), "./nov-examples/"):
            answer = await h.client.get(
                "/backtests", params={"folder": given}, allow_redirects=False
            )
            assert answer.status == 303, given
            assert answer.headers["Location"] == "/backtests/nov-examples"
        missing = await h.client.get("/backtests", params={"folder": "nope"})
        assert missing.status == 404
        assert 'data-testid="backtest-open-error"' in await missing.text()

    run(scenario, prepared)


def test_the_backtest_directory_defaults_to_one_beside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "console" / "console.duckdb"
    assert backtest_dir(Settings(console_store_path=store)) == tmp_path / "console" / "backtests"
    chosen = tmp_path / "elsewhere"
    settings = Settings(console_store_path=store, console_backtest_dir=chosen)
    assert backtest_dir(settings) == chosen


# --------------------------------------------------------------------------- runs


def _form(
    csrf: str | None,
    events: bytes,
    profiles: bytes | None = None,
    rules: str = "live",
    compare: str = "",
    csrf_last: bool = False,
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None and not csrf_last:
        form.add_field("csrf", csrf)
    form.add_field("rules", rules)
    form.add_field("compare", compare)
    form.add_field("events", events, filename="events.jsonl", content_type="application/x-ndjson")
    if profiles is not None:
        form.add_field(
            "profiles", profiles, filename="profiles.jsonl", content_type="application/x-ndjson"
        )
    if csrf is not None and csrf_last:
        form.add_field("csrf", csrf)
    return form


def _staged(root: Path) -> list[Path]:
    return [p for p in (root / RUNS).iterdir()] if (root / RUNS).is_dir() else []


async def _finish(h: Harness, location: str) -> dict[str, Any]:
    """Poll the run's progress endpoint until it ends; every answer's percent is kept."""
    run_id = location.rsplit("/", 1)[1]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    seen: list[int] = []
    while True:
        answer = await h.client.get(f"/api/backtests/runs/{run_id}")
        assert answer.status == 200
        view: dict[str, Any] = await answer.json()
        seen.append(view["percent"])
        if view["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert seen == sorted(seen), f"the progress went back: {seen}"
    view["seen"] = seen
    return view


def test_a_run_needs_the_csrf_token_before_any_file_is_read(tmp_path: Path) -> None:
    rules, _, _ = _topic((EXAMPLE_RULES, EXAMPLE_RULES))
    events = b'{"x": 1}\n' * 10

    async def scenario(h: Harness) -> None:
        csrf = await h.csrf("/backtests")
        for form in (
            _form(None, events),
            _form("forged" * 8, events),
            _form(csrf, events, csrf_last=True),
        ):
            answer = await h.client.post("/backtests/runs", data=form, allow_redirects=False)
            assert answer.status == 403
        # A urlencoded body is not read for its token; with the header it is refused as no
        # upload.
        answer = await h.client.post(
            "/backtests/runs", data={"csrf": csrf, "rules": "live"}, allow_redirects=False
        )
        assert answer.status == 403
        answer = await h.client.post(
            "/backtests/runs",
            data={"rules": "live"},
            headers={"X-CSRF-Token": csrf},
            allow_redirects=False,
        )
        assert answer.status == 400
        assert _staged(tmp_path) == [], "something was staged for a refused post"
        assert [p.name for p in tmp_path.iterdir() if p.name != RUNS] == []

    run(scenario, tmp_path, rules=rules)


def test_an_upload_larger_than_the_setting_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    rules, _, _ = _topic((EXAMPLE_RULES, EXAMPLE_RULES))
    limit = 20_000

    async def scenario(h: Harness) -> None:
        csrf = await h.csrf("/backtests")
        page = await (await h.client.get("/backtests")).text()
        assert f'data-max-bytes="{limit}"' in page
        big = b'{"event_id": "e", "customer_id": "C1"}\n' * 2_000  # 78 kB
        answer = await h.client.post(
            "/backtests/runs", data=_form(csrf, big), allow_redirects=False
        )
        assert answer.status == 413
        assert "KAIROS_CONSOLE_BACKTEST_UPLOAD_MAX_MB" in await answer.text()
        # Just under the Content-Length check, over the limit once the files are added up.
        half = b"x" * (limit // 2 + 100)
        answer = await h.client.post(
            "/backtests/runs", data=_form(csrf, half, profiles=half), allow_redirects=False
        )
        assert answer.status == 413
        assert _staged(tmp_path) == []
        assert (await (await h.client.get("/api/backtests")).json())["running"] is None

    run(scenario, tmp_path, rules=rules, max_upload_bytes=limit)


def test_a_run_refuses_a_version_not_stored_or_the_same_twice(tmp_path: Path) -> None:
    rules, base, _ = _topic((EXAMPLE_RULES, EXAMPLE_RULES))
    events = b'{"x": 1}\n'

    async def scenario(h: Harness) -> None:
        csrf = await h.csrf("/backtests")
        for form, status in (
            (_form(csrf, events, rules="rs-000000000000"), 400),
            (_form(csrf, events, rules=base.version, compare=base.version), 400),
            (_form(csrf, b""), 400),  # no events
        ):
            answer = await h.client.post("/backtests/runs", data=form, allow_redirects=False)
            assert answer.status == status, await answer.text()
        assert _staged(tmp_path) == []

    run(scenario, tmp_path, rules=rules)


def test_a_completed_run_writes_what_kairos_backtest_out_writes(
    tmp_path: Path, traffic: Path, rulesets: tuple[Path, Path]
) -> None:
    rules, base, changed = _topic(rulesets)
    root = tmp_path / "backtests"
    events = (traffic / "events.jsonl").read_bytes()
    profiles = (traffic / "profiles.jsonl").read_bytes()
    written: list[str] = []

    async def scenario(h: Harness) -> None:
        page = await (await h.client.get("/backtests")).text()
        assert f'<option value="live">live — {changed.version}</option>' in page
        csrf = await h.csrf("/backtests")
        answer = await h.client.post(
            "/backtests/runs",
            data=_form(csrf, events, profiles, rules=base.version, compare="live"),
            allow_redirects=False,
        )
        assert answer.status == 303, await answer.text()
        location = answer.headers["Location"]
        assert location.startswith("/backtests/runs/")
        progress_page = await (await h.client.get(location)).text()
        assert 'data-testid="run-progress"' in progress_page
        view = await _finish(h, location)
        assert view["state"] == "done", view
        assert view["percent"] == 100 and view["events"] > 1000
        assert view["url"] == f"/backtests/{view['folder']}"
        assert view["rules"] == base.version and view["compare"] == f"live ({changed.version})"
        assert view["who"] == "alice (token)"
        opened = await h.client.get(view["url"])
        assert opened.status == 200
        assert 'data-kind="comparison"' in await opened.text()
        listed = await (await h.client.get("/api/backtests")).json()
        assert view["folder"] in [f["name"] for f in listed["folders"]]
        # the inputs (customer data) are gone; only the progress note is left
        for staged in _staged(root):
            assert not (staged / INPUTS).exists()
            assert RunProgress.model_validate_json((staged / "progress.json").read_text()).ended
        written.append(view["folder"])

    run(scenario, root, rules=rules)

    folder = root / written[0]
    cli = _backtest_out(tmp_path / "cli", rulesets[0], traffic, "--compare", str(rulesets[1]))
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in cli.iterdir())
    assert json.loads((folder / "report.json").read_text()) == json.loads(
        (cli / "report.json").read_text()
    )
    for name in ("rules.csv", "daily.csv", "rules-other.csv", "daily-other.csv"):
        assert (folder / name).read_text() == (cli / name).read_text(), name
    rows = list(csv.DictReader(io.StringIO((folder / "rules.csv").read_text())))
    assert "salary-wealth-offer" in [row["rule_id"] for row in rows]
    assert (folder / "chart.html").read_text().count("Plotly.newPlot(") == 8


def test_a_run_of_the_bootstrap_rules_when_nothing_is_deployed(
    tmp_path: Path, traffic: Path
) -> None:
    root = tmp_path / "backtests"
    events = (traffic / "events.jsonl").read_bytes()

    async def scenario(h: Harness) -> None:
        page = await (await h.client.get("/backtests")).text()
        assert '<option value="bootstrap">' in page and '<option value="live">' not in page
        csrf = await h.csrf("/backtests")
        answer = await h.client.post(
            "/backtests/runs", data=_form(csrf, events, rules="bootstrap"), allow_redirects=False
        )
        assert answer.status == 303, await answer.text()
        view = await _finish(h, answer.headers["Location"])
        assert view["state"] == "done", view
        report = BacktestReport.model_validate_json(
            (root / view["folder"] / "report.json").read_text()
        )
        assert report.inputs.events == view["events"]
        assert sorted(p.name for p in (root / view["folder"]).iterdir()) == [
            "chart.html",
            "daily.csv",
            "report.json",
            "rules.csv",
        ]

    run(scenario, root, rules=FakeRules(), bootstrap=EXAMPLE_RULES)


def test_one_run_at_a_time_and_a_stopped_console_stops_its_run(tmp_path: Path) -> None:
    """A job that never ends (a stand-in interpreter that sleeps) holds the one slot."""
    rules, _, _ = _topic((EXAMPLE_RULES, EXAMPLE_RULES))
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    os.chmod(sleeper, 0o755)
    root = tmp_path / "backtests"
    events = b'{"x": 1}\n' * 10
    started: list[str] = []

    async def scenario(h: Harness) -> None:
        csrf = await h.csrf("/backtests")
        first = await h.client.post(
            "/backtests/runs", data=_form(csrf, events), allow_redirects=False
        )
        assert first.status == 303
        started.append(first.headers["Location"].rsplit("/", 1)[1])
        view = await (await h.client.get(f"/api/backtests/runs/{started[0]}")).json()
        assert (view["state"], view["percent"]) == ("queued", 0)
        second = await h.client.post(
            "/backtests/runs", data=_form(csrf, events), allow_redirects=False
        )
        assert second.status == 409
        page = await (await h.client.get("/backtests")).text()
        assert 'data-testid="run-going"' in page
        for unknown in ("ffffffffffffffff", "not-a-run-id"):
            assert (await h.client.get(f"/api/backtests/runs/{unknown}")).status == 404
            assert (await h.client.get(f"/backtests/runs/{unknown}")).status == 404

    run(scenario, root, rules=rules, python=str(sleeper))
    # The console stopped: its run was stopped too, marked failed, and its inputs deleted.
    staged = root / RUNS / started[0]
    progress = RunProgress.model_validate_json((staged / "progress.json").read_text())
    assert progress.state == "failed" and "stopped" in (progress.error or "")
    assert not (staged / INPUTS).exists()


def test_hidden_field_helper_reads_the_run_forms_token(prepared: Path) -> None:
    async def scenario(h: Harness) -> None:
        page = await (await h.client.get("/backtests")).text()
        form = page[page.index('id="backtest-run-form"') :]
        # the token is the form's first field: the server reads it before any file
        assert form.index('name="csrf"') < form.index('name="rules"') < form.index('name="events"')
        assert hidden(form, "csrf") == await h.csrf("/backtests")

    run(scenario, prepared, rules=_topic((EXAMPLE_RULES, EXAMPLE_RULES))[0])
