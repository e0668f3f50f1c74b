"""Finding the external tools the ops tests run: promtool and a compose client.

They are not Python packages, so a developer may not have them: those checks skip then,
saying how to get the tools (``ops/install-ops-tools.sh``). CI sets
``KAIROS_REQUIRE_OPS_TOOLS=1`` so a missing tool fails instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRE = "KAIROS_REQUIRE_OPS_TOOLS"
INSTALL_HINT = "bash ops/install-ops-tools.sh installs it"


def missing(tool: str) -> NoReturn:
    """Skip the calling test, or fail it when the environment requires the ops tools."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{tool} not found and {REQUIRE}=1 ({INSTALL_HINT})")
    pytest.skip(f"{tool} not found ({INSTALL_HINT})")


def promtool() -> Path:
    """``$PROMTOOL``, else ``promtool`` on PATH, else the copy in ``.ci/tools/``."""
    candidates = [os.environ.get("PROMTOOL"), shutil.which("promtool")]
    candidates.append(str(REPO / ".ci" / "tools" / "promtool"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    missing("promtool")


def compose() -> list[str]:
    """The compose client: ``docker-compose`` (v1), else the ``docker compose`` plugin."""
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if plugin.returncode == 0:
            return [docker, "compose"]
    missing("docker-compose (or the docker compose plugin)")


def run(
    command: list[str | Path], cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool in the repository; the result carries its output for assertion messages.

    ``stdin`` is fed to the tool (``promtool check metrics`` reads a scrape from it).
    """
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
