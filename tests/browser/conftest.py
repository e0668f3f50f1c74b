"""Fixtures that drive a real Chromium (Debian's, through Playwright's sync API).

* ``browser`` — one headless Chromium for the package (``tests/browser``), launched with
  ``executable_path=/usr/bin/chromium``; closed, with Playwright's driver stopped, after the
  last browser test even when tests failed, and the run fails if any Chromium process it
  started is still alive then (those are killed by PID).
* ``context`` / ``page`` — a fresh browser context (its own cookies and storage) and page per
  test, watched for requests off this machine and uncaught script errors (``page_watch``):
  either fails the test at teardown. A failing test's page is saved as a PNG, and the path
  is printed with the failure.
* ``broker`` / ``kairos`` — the integration tests' Kairos (a worker on its own topics, and
  helpers to send profiles and events) on an embedded broker of this package's own, for the
  console's tests; started only by the tests that ask for them.
* ``screenshot`` — ``screenshot(page, "campaigns")`` saves a full-page PNG: into
  ``$KAIROS_SCREENSHOTS_DIR`` when set (``KAIROS_SCREENSHOTS_DIR=docs/console pytest
  tests/browser`` refreshes the screenshots in ``docs/``), else into the test's ``tmp_path``,
  so CI never writes into the repository.

Without Chromium or playwright the browser tests skip, saying how to install them;
``KAIROS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes them fail instead.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.kafka import EmbeddedBroker
from tests.browser.chromium import Launcher, chromium_descendants, executable, launcher, reap
from tests.browser.console import start_console as start_console
from tests.browser.watch import PageWatch
from tests.integration.conftest import kairos as kairos

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

SCREENSHOTS_DIR = "KAIROS_SCREENSHOTS_DIR"
VIEWPORT = {"width": 1440, "height": 900}
# A locator action or an expectation that waits longer than these fails (Playwright's own
# defaults, 30 s and 5 s, are raised a little for a loaded two-core CI machine); the tests
# that wait on the pipeline pass their own, longer timeouts.
DEFAULT_TIMEOUT_MS = 15_000
EXPECT_TIMEOUT_MS = 10_000

_page_key = pytest.StashKey[tuple["Page", Path]]()
_watch_key = pytest.StashKey[PageWatch]()


@pytest.fixture(scope="package")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """An embedded broker for the console's tests, stopped after the browser tests.

    The integration tests' ``kairos`` factory (imported above) asks for ``broker`` by name
    and gets this one: a package-scoped broker, so it is not left running (beside the
    integration tests' own) for the rest of the session.
    """
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture(scope="package")
def chromium_launcher() -> Iterator[Launcher]:
    """Playwright's driver for the browser tests; closing it checks no Chromium outlives it."""
    with launcher(executable()) as running:
        yield running


@pytest.fixture(scope="package")
def browser(chromium_launcher: Launcher) -> Browser:
    """One headless Chromium shared by the browser tests (each gets its own context)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return chromium_launcher.launch()


@pytest.fixture
def page_watch(request: pytest.FixtureRequest) -> PageWatch:
    """What the test's pages did off this machine or got wrong in their scripts.

    It records until the test's body ends: a live page whose server is stopped first at
    teardown fails its requests then, and that is not the test's finding.
    """
    watch = PageWatch()
    request.node.stash[_watch_key] = watch
    return watch


@pytest.fixture
def context(
    browser: Browser, chromium_launcher: Launcher, page_watch: PageWatch
) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies, no storage) for one test, closed after it."""
    context = browser.new_context(
        viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page_watch.attach(context)
    try:
        yield context
    finally:
        chromium_launcher.record()  # the renderers this test made, to check at the end
        context.close()
    problems = page_watch.problems()
    if problems:
        pytest.fail("the pages misbehaved:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest, tmp_path: Path) -> Page:
    """A blank page in the test's own context."""
    page = context.new_page()
    request.node.stash[_page_key] = (page, tmp_path)
    return page


class Screenshots:
    """Saves full-page PNGs of pages by name, into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        """Save ``page`` as ``<folder>/<name>.png`` and return the path."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, - and _")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshots:
    """``screenshot(page, name)``: into ``$KAIROS_SCREENSHOTS_DIR`` if set, else ``tmp_path``."""
    configured = os.environ.get(SCREENSHOTS_DIR)
    return Screenshots(Path(configured).resolve() if configured else tmp_path / "screenshots")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Stop the page watch when the test's body ends; on a failure, save what the page showed."""
    report = yield
    watch = item.stash.get(_watch_key, None)
    if report.when == "call" and watch is not None:
        watch.stop()
    found = item.stash.get(_page_key, None)
    if report.when == "call" and report.failed and found is not None:
        page, folder = found
        path = folder / "failure.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            where = f"{page.url}\nscreenshot: {path}"
        except Exception as exc:  # the page or browser may be what failed
            where = f"no screenshot ({type(exc).__name__}: {exc})"
        report.sections.append(("browser page at the failure", where))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any Chromium process is still below this pytest (and kill it by PID)."""
    stray = chromium_descendants()
    if not stray:
        return
    print("\nChromium processes outlived the browser tests (killing them):", file=sys.stderr)
    for process in sorted(stray, key=lambda p: p.pid):
        print(f"  {process.describe()}", file=sys.stderr)
    for _ in range(5):  # a browser may start a helper between our look and our kill
        reap(stray, grace=0.0)
        more = chromium_descendants() - stray
        if not more:
            break
        stray |= more
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
