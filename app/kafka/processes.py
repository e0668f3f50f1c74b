"""Start and stop ``kairos worker`` and ``kairos console`` processes by PID, on readiness.

Readiness is what the process's web server answers, never a sleep.

Shared by ``kairos demo`` and the integration tests, so both exercise the same entry point
the production image runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from schemas.errors import KairosError


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop a child by PID: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class WorkerStartError(KairosError):
    """A worker exited or did not become ready in time."""


class ManagedProcess:
    """A subprocess we start and stop by PID: a context manager that stops it even on failure."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> int | None:
        """Stop it; its exit code when known."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class WorkerProcess(ManagedProcess):
    """One ``kairos worker`` subprocess with its own environment."""

    #: The variable its web port is passed in, and the path that answers 200 once ready.
    PORT_VARIABLE = "KAIROS_WEB_PORT"
    READY_PATH = "/readyz"
    NAME = "worker"

    def __init__(
        self,
        env: Mapping[str, str],
        web_port: int,
        log_path: Path | None = None,
        module: str = "app.cli",
        args: Sequence[str] = ("worker",),
    ) -> None:
        self.env = dict(env)
        self.command = [sys.executable, "-m", module, *args]
        self.web_port = web_port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.env, self.PORT_VARIABLE: str(self.web_port)}
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            self.command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
        return self

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The process's exit code once it has exited (None while running or never started)."""
        return self._process.poll() if self._process else None

    def get_json(self, path: str, timeout: float = 2.0) -> tuple[int, object]:
        """GET a JSON endpoint of this worker; (status, body)."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def metric_samples(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of ``name`` on ``/metrics`` matching ``labels``: (labels, value)."""
        from prometheus_client.parser import text_string_to_metric_families

        only = urllib.parse.urlencode({"name[]": name})  # the worker renders only that series
        with urllib.request.urlopen(f"{self.base_url}/metrics?{only}", timeout=2.0) as response:
            text = response.read().decode()
        return [
            (dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def metric(self, name: str, **labels: str) -> float:
        """Current value of one sample on ``/metrics`` (0.0 when absent)."""
        samples = self.metric_samples(name, **labels)
        return samples[0][1] if samples else 0.0

    def wait_metric(
        self, name: str, at_least: float, timeout: float = 30.0, **labels: str
    ) -> float:
        """Block until a metric reaches ``at_least``: waits on the worker, not on a sleep."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Block until :attr:`READY_PATH` answers 200; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.is_running():
                code = self._process.returncode if self._process else None
                where = f"; log: {self.log_path}" if self.log_path else ""
                raise WorkerStartError(
                    f"{self.NAME} exited with code {code} before becoming ready{where}"
                )
            try:
                status, _ = self.get_json(self.READY_PATH, timeout=1.0)
                if status == 200:
                    return time.monotonic() - started
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise WorkerStartError(f"{self.NAME} not ready within {timeout}s")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; its exit code (None if none)."""
        process, self._process = self._process, None
        terminate(process, timeout)
        return process.returncode if process is not None else None

    def kill(self) -> None:
        """SIGKILL: a crash, for failover and recovery tests."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)


class ConsoleProcess(WorkerProcess):
    """One ``kairos console`` subprocess: its own process, so it is scaled and secured apart.

    Ready once ``/healthz`` answers, which it does as soon as it serves: the store it reads
    is on disk, and the follower catches up behind it (the pages say how far it is).
    """

    PORT_VARIABLE = "KAIROS_CONSOLE_PORT"
    READY_PATH = "/healthz"
    NAME = "console"

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path | None = None) -> None:
        super().__init__(env, port, log_path, args=("console",))
