"""Whether this worker still decides: the truth behind ``/healthz`` and ``/readyz``.

An agent that raised out of its loop decides nothing more, yet Faust's web server goes on
answering: a crashed worker once kept saying 200 for 22 to 60 s and more while its partitions
stood still. So the moment an agent fails, :meth:`AgentHealth.fail` marks the worker dead
(both endpoints answer 503 from then on) and arms a deadline: if Faust's own shutdown has
not ended the process by then (it can wait on the broker for a long time), the process
exits with :data:`EXIT_AGENT_FAILED`, so the orchestrator restarts it. Exiting hard is safe
by design: outputs are acknowledged before state is stored and offsets are committed, so a
restart re-decides at most the messages in flight, with the same ids.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Exit status of a worker whose agent failed (EX_SOFTWARE): not a clean stop.
EXIT_AGENT_FAILED = 70
#: Seconds Faust gets to stop cleanly after an agent failed, before the process exits.
EXIT_DEADLINE_S = 5.0


@dataclass
class AgentHealth:
    """The first agent failure of this process, if any; shared by the agents and the web."""

    exit_deadline_s: float = EXIT_DEADLINE_S
    failed_agent: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def alive(self) -> bool:
        return self.failed_agent is None

    def fail(self, agent: str) -> None:
        """Mark the worker dead at once and make sure the process ends within the deadline."""
        with self._lock:
            if self.failed_agent is not None:
                return
            self.failed_agent = agent
        deadline = threading.Timer(self.exit_deadline_s, self._exit, args=(agent,))
        deadline.daemon = True
        deadline.start()

    def _exit(self, agent: str) -> None:
        log.critical(
            "Agent %s failed and the worker did not stop within %.0f s: exiting with status %d",
            agent,
            self.exit_deadline_s,
            EXIT_AGENT_FAILED,
        )
        logging.shutdown()
        os._exit(EXIT_AGENT_FAILED)


def is_ready(app: Any, health: AgentHealth) -> bool:
    """Agents alive, partitions assigned, state recovered: only then are decisions current.

    ``app`` is the worker's ``faust.App``; its table manager's recovery says when the
    state tables are restored.
    """
    if not health.alive:
        return False
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not app.rebalancing)
