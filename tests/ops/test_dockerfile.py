"""The worker image: what it runs, as whom, where its state goes, and its health check.

No Docker engine here, so the Dockerfile is read statically and its HEALTHCHECK command is
run for real against a local HTTP server standing in for the worker's /healthz.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from app.settings import Settings
from tests.ops.tools import REPO

STATE_DIR = "/var/lib/kairos"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    parsed = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _one(keyword: str) -> str:
    found = [arguments for kw, arguments in _final_stage() if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _healthcheck_command() -> list[str]:
    arguments = _one("HEALTHCHECK")
    _, _, command = arguments.partition("CMD ")
    parsed: list[str] = json.loads(command)
    return parsed


def test_the_image_is_python_3_11_slim() -> None:
    args = dict(
        arguments.split("=", 1) for keyword, arguments in _instructions() if keyword == "ARG"
    )
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert all(
        arguments.startswith("${PYTHON_IMAGE}") for kw, arguments in _instructions() if kw == "FROM"
    )


def test_the_worker_runs_as_a_non_root_user() -> None:
    user = _one("USER").split(":")[0]
    assert user not in {"root", "0"}
    keywords = [keyword for keyword, _ in _final_stage()]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_it_runs_the_kairos_console_script_as_the_worker() -> None:
    assert json.loads(_one("ENTRYPOINT")) == ["kairos"]
    assert _pyproject()["project"]["scripts"]["kairos"] == "app.cli:main"
    command = json.loads(_one("CMD"))
    assert command == ["worker"]
    from app.cli import parser

    assert parser().parse_args(command).command == "worker"


def test_it_installs_the_package_from_pyproject() -> None:
    runs = " ".join(arguments for keyword, arguments in _instructions() if keyword == "RUN")
    assert "pip install ." in runs


def test_it_copies_every_package_and_the_ignore_file_keeps_them() -> None:
    includes = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    readme = _pyproject()["project"]["readme"]
    needed = {*packages, "pyproject.toml", readme}
    copy_sources: set[str] = set()
    for keyword, arguments in _instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            copy_sources.update(arguments.split()[:-1])
    assert needed <= copy_sources, f"not copied into the build: {needed - copy_sources}"
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in needed:
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), path
    for local in (".git", ".venv", "var", ".env"):
        assert local in ignored, f"{local} would be sent to the build (and may hold secrets)"


def test_state_lives_on_a_volume_owned_by_the_worker() -> None:
    envs = " ".join(arguments for keyword, arguments in _final_stage() if keyword == "ENV")
    assert f"KAIROS_STATE_DIR={STATE_DIR}" in envs
    assert json.loads(_one("VOLUME")) == [STATE_DIR]
    keywords = [keyword for keyword, _ in _final_stage()]
    assert keywords.index("USER") < keywords.index("VOLUME")
    assert "KAIROS_WEB_HOST=0.0.0.0" in envs, "the worker must be reachable from outside"


def test_it_exposes_the_web_port() -> None:
    assert _one("EXPOSE") == str(Settings.model_fields["web_port"].default)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = 200 if self.path == "/healthz" else 404
        self.send_response(code if type(self).status == 200 else type(self).status)
        self.end_headers()
        self.wfile.write(b'{"status": "alive"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        _Health.status = 200


def _run_healthcheck(port: int) -> int:
    command = _healthcheck_command()
    assert command[0] == "python"
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env={"KAIROS_WEB_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def test_the_healthcheck_passes_when_healthz_answers(health_server: HTTPServer) -> None:
    assert _run_healthcheck(health_server.server_address[1]) == 0


def test_the_healthcheck_fails_on_an_error_status(health_server: HTTPServer) -> None:
    _Health.status = 500
    assert _run_healthcheck(health_server.server_address[1]) != 0


def test_the_healthcheck_fails_when_nothing_listens(health_server: HTTPServer) -> None:
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    assert _run_healthcheck(port) != 0
