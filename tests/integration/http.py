"""A GET with headers against a worker, for endpoints that need a bearer token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from app.kafka import WorkerProcess


def get(
    worker: WorkerProcess, path: str, token: str | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of ``GET path``; a bearer token when given."""
    request = urllib.request.Request(worker.base_url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")
