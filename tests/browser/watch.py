"""What a page did that a test did not ask about: requests off this machine, script errors.

The console must work with no request to the internet (everything served locally) and
without JavaScript errors; every browser test's page is watched for both, and the test fails
at teardown when either happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Error, Page, Request, Response

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Schemes that never leave the browser.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome-error", "chrome"})


def is_local(url: str) -> bool:
    """The URL stays on this machine: a loopback host, or a scheme with no network."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@dataclass
class PageWatch:
    """Records, for every page of a browser context, what would make a page test untrustworthy.

    ``allow_server_errors`` is for a test that provokes a 5xx on purpose.
    """

    external_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    allow_server_errors: bool = False
    stopped: bool = False

    def stop(self) -> None:
        """Stop recording: what pages do while the test's servers shut down is not its fault."""
        self.stopped = True

    def attach(self, context: BrowserContext) -> None:
        """Watch every page the context opens from now on (and requests it makes itself)."""
        context.on("request", self._on_request)
        context.on("response", self._on_response)
        context.on("page", self.attach_page)
        for page in context.pages:
            self.attach_page(page)

    def attach_page(self, page: Page) -> None:
        """Watch one page for uncaught script errors."""
        page.on("pageerror", self._on_page_error)

    def _on_request(self, request: Request) -> None:
        if not self.stopped and not is_local(request.url):
            self.external_requests.append(f"{request.method} {request.url}")

    def _on_response(self, response: Response) -> None:
        if not self.stopped and response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")

    def _on_page_error(self, error: Error) -> None:
        if not self.stopped:
            self.page_errors.append(f"{error.name}: {error.message}")

    def problems(self) -> list[str]:
        """One line per problem seen; empty when the pages behaved."""
        found = [f"request off this machine: {line}" for line in self.external_requests]
        found += [f"uncaught script error: {line}" for line in self.page_errors]
        if not self.allow_server_errors:
            found += [f"server error: {line}" for line in self.server_errors]
        return found
