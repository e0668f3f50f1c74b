"""Debian's Chromium under Playwright for Python: found, launched, watched and stopped by PID.

The browser tests drive ``/usr/bin/chromium`` (Debian's ``chromium`` package, installed by
``ops/install-browser.sh``) through Playwright's sync API with ``executable_path``: Playwright's
own browser download is never used. A developer without Chromium sees the browser tests skip,
saying how to get it; CI sets ``KAIROS_REQUIRE_BROWSER=1`` so a missing browser fails instead.

Every Chromium process a launch starts is recorded by PID (and start time, so a recycled PID
is not mistaken for it); :meth:`Launcher.close` closes the browsers, stops Playwright's
driver, waits for those processes to go, kills any that stay (by PID) and returns them, so
the fixtures can fail the run instead of leaving a stray browser behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

REQUIRE = "KAIROS_REQUIRE_BROWSER"
INSTALL_HINT = (
    "bash ops/install-browser.sh installs Debian's chromium; "
    "pip install -e '.[dev]' installs playwright"
)
DEFAULT_EXECUTABLE = Path("/usr/bin/chromium")

# Headless, as root, on a machine with no GPU and no route to the internet: without the
# background-networking flags Chromium keeps trying to reach Google's services at start-up.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
_CHROMIUM_NAMES = frozenset({"chromium", "chrome", "chromium-browse", "headless_shell"})


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it when the environment requires the browser."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} and {REQUIRE}=1 ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT})")


def executable() -> Path:
    """``$KAIROS_CHROMIUM``, else ``/usr/bin/chromium``; skips (or fails) when absent."""
    path = Path(os.environ.get("KAIROS_CHROMIUM") or DEFAULT_EXECUTABLE)
    if not os.access(path, os.X_OK):
        unavailable(f"no Chromium at {path}")
    return path


@dataclass(frozen=True)
class ProcessId:
    """A process by PID and start time (clock ticks since boot): a PID that is reused differs."""

    pid: int
    started: int

    def alive(self) -> bool:
        """Running (a zombie waiting to be reaped has exited and does not count)."""
        stat = _stat(self.pid)
        return stat is not None and stat[2] != "Z" and stat[3] == self.started

    def kill(self) -> None:
        """SIGKILL this very process, if it is still the one we recorded."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def describe(self) -> str:
        """``pid 123: /usr/lib/chromium/chromium --type=renderer ...`` for failure messages."""
        try:
            command = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return f"pid {self.pid}"
        return f"pid {self.pid}: {command.decode(errors='replace')[:160]}"


def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(pid, parent pid, state, start time) from ``/proc/<pid>/stat``; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return pid, int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> list[ProcessId]:
    """Every living process below ``root`` in the process tree, read from ``/proc``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[2] != "Z":
                children.setdefault(stat[1], []).append((stat[0], stat[3]))
    found: list[ProcessId] = []
    stack = [root]
    while stack:
        for pid, started in children.get(stack.pop(), []):
            found.append(ProcessId(pid, started))
            stack.append(pid)
    return found


def is_chromium(process: ProcessId) -> bool:
    """The process runs a Chromium binary (browser, zygote, renderer, GPU or utility)."""
    try:
        name = Path(f"/proc/{process.pid}/comm").read_text().strip()
    except OSError:
        return False
    if name in _CHROMIUM_NAMES:
        return True
    try:
        return Path(os.readlink(f"/proc/{process.pid}/exe")).name in _CHROMIUM_NAMES
    except OSError:
        return False


def chromium_descendants(root: int | None = None) -> set[ProcessId]:
    """The Chromium processes below ``root`` (default: this Python process)."""
    return {p for p in descendants(os.getpid() if root is None else root) if is_chromium(p)}


def reap(processes: set[ProcessId], grace: float = 10.0) -> list[ProcessId]:
    """Wait up to ``grace`` seconds for ``processes`` to exit; SIGKILL and return the stayers."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(process.alive() for process in processes):
            return []
        time.sleep(0.05)
    stayers = sorted((p for p in processes if p.alive()), key=lambda p: p.pid)
    for process in stayers:
        process.kill()
    deadline = time.monotonic() + 5.0
    while any(p.alive() for p in stayers) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is not synchronous: gone (or a zombie) shortly after
    return stayers


class Launcher:
    """One Playwright driver and the Chromium browsers launched through it, tracked by PID.

    Playwright's sync API allows one driver per thread at a time, so a test that needs a
    browser of its own launches it here, next to the shared one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[ProcessId] = set()
        self._playwright: Playwright | None = None
        self._browsers: list[Browser] = []

    def start(self) -> Launcher:
        """Start Playwright's driver (skips, or fails, if playwright is not installed)."""
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            unavailable("the playwright package is not installed")
        self._playwright = sync_playwright().start()
        return self

    def launch(self) -> Browser:
        """A headless Chromium on a fresh temporary profile (Playwright makes one per launch)."""
        assert self._playwright is not None, "start() the launcher first"
        browser = self._playwright.chromium.launch(
            executable_path=str(self.path), args=list(CHROMIUM_ARGS), headless=True
        )
        self._browsers.append(browser)
        self.record()
        return browser

    def record(self) -> set[ProcessId]:
        """Remember every Chromium process running below us now (renderers come and go)."""
        now = chromium_descendants()
        self.seen |= now
        return now

    def close_browser(self, browser: Browser) -> None:
        """Close one browser; its processes stay recorded so :meth:`close` checks them."""
        self.record()
        if browser in self._browsers:
            self._browsers.remove(browser)
        with contextlib.suppress(Exception):  # a crashed browser cannot be closed politely
            browser.close()

    def close(self) -> list[ProcessId]:
        """Close every browser, stop the driver, and return the Chromium processes that stayed.

        Always stops the driver, even when closing a browser raises; whatever is still alive
        after the grace period is killed by PID (and returned, so the caller can fail).
        """
        self.record()
        try:
            for browser in list(self._browsers):
                self.close_browser(browser)
        finally:
            playwright, self._playwright = self._playwright, None
            if playwright is not None:
                with contextlib.suppress(Exception):
                    playwright.stop()
        # Also anything below us now that we never saw (launched and gone between records).
        return reap(self.seen | chromium_descendants())


@contextlib.contextmanager
def launcher(path: Path) -> Iterator[Launcher]:
    """A started :class:`Launcher` that is closed on exit, and fails if Chromium outlives it."""
    running = Launcher(path).start()
    failed = True
    try:
        yield running
        failed = False
    finally:
        stayers = running.close()
        if stayers and not failed:
            lines = "\n".join(p.describe() for p in stayers)
            pytest.fail(f"Chromium processes outlived their browser (killed):\n{lines}")
