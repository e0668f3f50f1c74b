"""A real ``kairos console`` for the browser tests, and signing in to it as a person would.

Every browser test of the console starts one the same way (on the test's own topics, its
store under the test's folder, a fast refresh) and signs in through the form, so the two
live here once; a test adds only the settings it is about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.kafka import free_port
from app.kafka.processes import ConsoleProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

CONSOLE_TOKEN = "console-token-for-the-browser-tests"

#: ``start_console(k, **settings)``: a console on k's topics, stopped by PID after the test.
StartConsole = Callable[..., ConsoleProcess]


@pytest.fixture
def start_console(tmp_path: Path) -> Iterator[StartConsole]:
    """Factory: ``start_console(k, KAIROS_CONSOLE_...=...)`` starts ``kairos console``.

    It reads k's topics with a consumer group of its own, keeps its store under
    ``tmp_path`` and refreshes its pages twice a second, so a test waits on the page, not on
    the clock.
    """
    started: list[ConsoleProcess] = []

    def start(k: Any, **settings: str) -> ConsoleProcess:
        env = {
            **k.env,
            "KAIROS_CONSOLE_TOKEN": CONSOLE_TOKEN,
            "KAIROS_CONSOLE_STORE_PATH": str(tmp_path / "console" / "console.duckdb"),
            "KAIROS_CONSOLE_GROUP_ID": f"{k.topics.prefix}-console",
            "KAIROS_CONSOLE_REFRESH_S": "0.5",
            **settings,
        }
        console = ConsoleProcess(env, free_port(), tmp_path / "console.log")
        started.append(console)
        console.start().wait_ready(timeout=60)
        return console

    yield start
    for console in started:
        console.stop()


def sign_in(page: Page, console: ConsoleProcess, name: str) -> None:
    """Sign in through the form with the shared token, as ``name``; lands on the campaigns."""
    from playwright.sync_api import expect

    page.goto(console.base_url + "/login")
    page.get_by_test_id("login-name").fill(name)
    page.get_by_test_id("login-token").fill(CONSOLE_TOKEN)
    with page.expect_navigation():
        page.get_by_test_id("login-token-submit").click()
    refused = page.get_by_test_id("login-error")
    assert not refused.count(), f"sign-in refused: {refused.first.inner_text()}"
    expect(page).to_have_url(re.compile(r"/campaigns$"))
    expect(page.get_by_test_id("signed-in-as")).to_contain_text(name)
