"""One batch's way out of the worker: stage → deliver → wait for acks → store → commit.

Quix Streams' checkpoint order, as a named object instead of a closure, because the order
*is* the crash guarantee:

1. **stage** — each message's outputs and state are collected; nothing is written yet, and
   a customer's later message in the batch reads the state its earlier one staged;
2. **deliver** — every output is handed to the producer;
3. **wait for acks** — once, for the whole batch;
4. **store** — only then each changed customer's state is written, once, to its table
   partition (and so to the changelog);
5. **commit** — the input offsets move only after the batch is handed back to Faust,
   which acknowledges its events when the agent asks for the next batch.

A crash anywhere before 4 re-processes the batch with the same deterministic ids, so no
contact is lost and a duplicate carries the same ``action_id``; a stored state that
remembers a message implies its outputs were delivered.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from faust.streams import _current_event

from agents.processor import Processed

log = logging.getLogger(__name__)

#: Seconds between "still waiting for the broker" warnings.
SLOW_ACK_S = 5.0


class BatchView(Mapping[bytes, bytes]):
    """The state table as one batch sees it: what earlier messages of the batch staged first.

    Nothing reaches the table until the whole batch's outputs are acknowledged; until then a
    customer's second event in the batch must still see the state its first event left.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.staged: dict[bytes, bytes] = {}
        #: The Faust event that staged each key: its partition is where the write belongs.
        self.origins: dict[bytes, Any] = {}

    def stage(self, processed: Processed, origin: Any = None) -> None:
        if processed.state is not None:
            key, value = processed.state
            self.staged[key] = value
            self.origins[key] = origin

    def __getitem__(self, key: bytes) -> bytes:
        if key in self.staged:
            return self.staged[key]
        value = self.table.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def get(self, key: bytes, default: Any = None) -> Any:
        staged = self.staged.get(key)
        return staged if staged is not None else self.table.get(key, default)

    def __iter__(self) -> Iterator[bytes]:
        return iter({*self.staged, *self.table.keys()})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def bind_current_event(event: Any) -> None:
    """Make ``event`` Faust's current event in this task only.

    Faust's RocksDB store reads and writes the partition of the current event. Only the
    context variable is set, which is per task: ``Stream._set_current_event`` would also
    change the stream's ``current_event``, which ``take_events`` reads from another task to
    know which event to acknowledge.
    """
    _current_event.set(weakref.ref(event))


class Checkpoint:
    """The outputs and states of one batch, on their way out in the guaranteed order."""

    def __init__(self, table: Any, outputs: Mapping[str, Any], what: str) -> None:
        self.view = BatchView(table)
        self.outputs = outputs
        #: Where the batch came from, for the slow-acknowledgement warning.
        self.what = what
        self.processed: list[Processed] = []

    def stage(self, processed: Processed, origin: Any) -> None:
        """Keep one message's outputs, and its state for the batch's later messages."""
        self.view.stage(processed, origin)
        self.processed.append(processed)

    async def deliver(self) -> list[Any]:
        """Hand every staged output to the producer; the acknowledgement futures."""
        return [
            await self.outputs[output.topic].send(key=output.key, value=output.value)
            for processed in self.processed
            for output in processed.outputs
        ]

    async def wait_for_acks(self, deliveries: list[Any]) -> None:
        """Wait once for the broker's acknowledgements, saying so if it takes unusually long."""
        if not deliveries:
            return
        pending = asyncio.ensure_future(asyncio.gather(*deliveries))
        waited = 0.0
        while True:
            done, _ = await asyncio.wait({pending}, timeout=SLOW_ACK_S)
            if done:
                pending.result()
                return
            waited += SLOW_ACK_S
            log.warning(
                "Still waiting after %.0fs for the broker to acknowledge %d output(s) of %s",
                waited,
                len(deliveries),
                self.what,
            )

    def store(self) -> None:
        """Write each changed customer's last state once, to its own table partition."""
        for key, value in self.view.staged.items():
            bind_current_event(self.view.origins[key])
            self.view.table[key] = value

    async def complete(self) -> None:
        """Deliver, wait for acks, store; Faust commits once the batch is handed back."""
        await self.wait_for_acks(await self.deliver())
        self.store()
