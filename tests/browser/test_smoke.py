"""The browser-test machinery, end to end, on a page served by aiohttp on 127.0.0.1.

These need no broker and no console: they prove that Debian's Chromium starts under
Playwright here, clicks, reads the DOM, follows a live-refreshing number, takes a readable
screenshot, notices a page reaching off this machine, and leaves no Chromium process behind,
even when the code that launched it fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from tests.browser.chromium import Launcher, ProcessId, chromium_descendants, executable, reap
from tests.browser.conftest import VIEWPORT, Screenshots
from tests.browser.watch import PageWatch

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kairos browser smoke</title>
<style>body { font-family: sans-serif; margin: 2rem; } #count { font-size: 3rem; }</style>
</head><body>
<h1>Browser smoke test</h1>
<p>Clicks seen by the server: <span id="count" data-testid="count">…</span></p>
<button id="click" data-testid="click">Click me</button>
<script>
  const show = (body) => { document.getElementById("count").textContent = String(body.clicks); };
  async function refresh() { show(await (await fetch("/api/clicks")).json()); }
  document.getElementById("click").addEventListener("click", async () => {
    show(await (await fetch("/api/clicks", { method: "POST" })).json());
  });
  refresh();
  setInterval(refresh, 200);  // live, like the console: no reload
</script>
</body></html>
"""


class LocalSite:
    """An aiohttp app served on 127.0.0.1 from a thread of its own, stopped on exit."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalSite:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


class Clicks:
    """The server's state: a counter the page reads and the test can move from outside."""

    def __init__(self) -> None:
        self.count = 0

    def app(self) -> web.Application:
        async def index(_: web.Request) -> web.Response:
            return web.Response(text=PAGE, content_type="text/html")

        async def read(_: web.Request) -> web.Response:
            return web.json_response({"clicks": self.count})

        async def click(_: web.Request) -> web.Response:
            self.count += 1
            return web.json_response({"clicks": self.count})

        async def favicon(_: web.Request) -> web.Response:
            return web.Response(status=204)

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/api/clicks", read)
        app.router.add_post("/api/clicks", click)
        app.router.add_get("/favicon.ico", favicon)
        return app


@pytest.fixture
def clicks() -> Clicks:
    return Clicks()


@pytest.fixture
def site(clicks: Clicks) -> Iterator[LocalSite]:
    with LocalSite(clicks.app()) as running:
        yield running


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded rows) of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = int.from_bytes(data[16:20]), int.from_bytes(data[20:24])
    idat, at = b"", 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_chromium_clicks_reads_follows_live_numbers_and_takes_a_screenshot(
    site: LocalSite, clicks: Clicks, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(site.url)
    expect(page).to_have_title("Kairos browser smoke")
    count = page.get_by_test_id("count")
    expect(count).to_have_text("0")

    page.get_by_role("button", name="Click me").click()
    expect(count).to_have_text("1")  # the page's script ran, asked the server and drew it
    assert clicks.count == 1  # and the server saw the click

    clicks.count = 41  # the data moves on its own: the page follows without a reload
    expect(count).to_have_text("41", timeout=5_000)
    assert page.get_by_role("heading").inner_text() == "Browser smoke test"

    # Always into tmp_path: KAIROS_SCREENSHOTS_DIR is for the console's pages in docs/.
    path = Screenshots(tmp_path)(page, "smoke")
    width, height, tones = png_facts(path)
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    # Text drawn with real fonts has anti-aliased edges: many shades, not a blank page.
    assert tones > 32, f"{path} looks blank ({tones} distinct byte values)"


def test_a_request_off_this_machine_and_a_script_error_are_caught(browser: Browser) -> None:
    # A context of its own, so this test's deliberate misbehaviour stays out of the watch
    # the fixtures apply to every other page (which would fail this test at teardown).
    watch = PageWatch()
    context = browser.new_context()
    try:
        watch.attach(context)
        page = context.new_page()
        page.set_content(
            '<script src="https://cdn.example.invalid/plotly.min.js"></script>'
            "<script>undefinedFunction()</script><p>done</p>"
        )
        page.get_by_text("done").wait_for()
    finally:
        context.close()
    assert watch.external_requests == ["GET https://cdn.example.invalid/plotly.min.js"]
    assert len(watch.page_errors) == 1
    assert "undefinedFunction" in watch.page_errors[0]
    assert len(watch.problems()) == 2


def test_a_closed_browser_leaves_no_chromium_process(chromium_launcher: Launcher) -> None:
    before = chromium_descendants()
    second = chromium_launcher.launch()
    second.new_page().set_content("<p>a second browser</p>")
    started = chromium_descendants() - before
    # The browser process and its helpers (zygotes, GPU, network, renderers) are found by PID.
    assert len(started) >= 2, f"expected Chromium's processes below this pytest: {started}"

    chromium_launcher.close_browser(second)
    assert reap(started, grace=10.0) == [], "Chromium outlived browser.close()"
    assert not any(process.alive() for process in started)


def test_chromium_is_stopped_when_the_code_that_launched_it_fails() -> None:
    """The launcher's clean-up runs on an exception: no Chromium survives a failing test.

    Run in a child Python, since Playwright's sync API allows one driver per thread and this
    one has the tests' driver already; the child reports its Chromium PIDs, then raises.
    """
    chromium = executable()  # skips (or fails, when required) without Chromium
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from tests.browser.chromium import chromium_descendants, launcher
        with launcher(Path(sys.argv[1])) as running:
            running.launch().new_page().set_content("<p>about to fail</p>")
            print(json.dumps([[p.pid, p.started] for p in chromium_descendants()]), flush=True)
            raise RuntimeError("the test failed here")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(chromium)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "RuntimeError: the test failed here" in result.stderr
    launched = {ProcessId(pid, started) for pid, started in json.loads(result.stdout)}
    assert len(launched) >= 2, result.stdout
    # Closed before the child exited: nothing is left to reap (none would be our child).
    still_running = [process.describe() for process in launched if process.alive()]
    assert still_running == []
