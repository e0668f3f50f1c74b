"""``kairos worker`` with one injected fault: the agent raises on one customer's message.

Poison input no longer reaches the agent's loop (the processor dead-letters it), so the
only way to see what a *dying agent* does is to make it die. Everything else is the real
worker: its Faust app, its pipeline, its health endpoints and its exit path. Started by
``tests/integration/test_fail_safe.py`` as ``python -m tests.integration.agent_failure_worker``.
"""

from __future__ import annotations

import sys
from typing import Any

from agents.processor import EventProcessor, InputMessage, Processed
from app.cli import main

#: Messages keyed by this customer make the agent raise.
FATAL_KEY = b"C-FATAL"

_process = EventProcessor.process


def _process_or_die(self: EventProcessor, message: InputMessage, store: Any) -> Processed:
    if message.key == FATAL_KEY:
        raise RuntimeError("injected agent failure")
    return _process(self, message, store)


if __name__ == "__main__":
    EventProcessor.process = _process_or_die  # type: ignore[method-assign]
    sys.exit(main(["worker"]))
