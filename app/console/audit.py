"""Where customer look-ups are audited: a small interface, a Kafka topic behind it.

The customer page awaits :meth:`AuditSink.record` *before* it asks the workers anything, and
shows nothing if it raises: a look-up the bank cannot account for afterwards must not
happen. Tests use :class:`ListAuditSink`; ``kairos console`` uses :class:`KafkaAuditSink`,
which waits for the broker's acknowledgement (``acks=all``) of each record.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from schemas.codec import encode
from schemas.console_audit import ConsoleAudit
from schemas.errors import KairosError

#: How long one audit record may take to be acknowledged before the look-up is refused.
AUDIT_TIMEOUT_S = 10.0


class AuditError(KairosError):
    """A look-up could not be audited, so it was not shown."""


class AuditSink(Protocol):
    """Records one customer look-up durably, or raises :class:`AuditError`."""

    async def record(self, entry: ConsoleAudit) -> None: ...


class ListAuditSink:
    """The audit trail in a list: for tests, and to see what would be written."""

    def __init__(self) -> None:
        self.entries: list[ConsoleAudit] = []
        self.fail = False

    async def record(self, entry: ConsoleAudit) -> None:
        if self.fail:
            raise AuditError("the audit sink is down (test)")
        self.entries.append(entry)


class KafkaAuditSink:
    """Audit records on ``<prefix>.console-audit``, keyed by the customer id looked up.

    One kafka-python producer, created on first use (the broker may come up after the
    console) and used from a worker thread, so the event loop never waits on the broker.
    """

    def __init__(self, bootstrap: list[str], topic: str, timeout: float = AUDIT_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _send(self, entry: ConsoleAudit) -> None:
        timeout_ms = max(1, int(self.timeout * 1000))
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id="kairos-console-audit",
                    acks="all",
                    bootstrap_timeout_ms=timeout_ms,
                    max_block_ms=timeout_ms,
                )
            producer = self._producer
        producer.send(self.topic, key=entry.customer_id.encode(), value=encode(entry)).get(
            timeout=self.timeout
        )

    async def record(self, entry: ConsoleAudit) -> None:
        try:
            await asyncio.to_thread(self._send, entry)
        except KafkaError as exc:
            # The type only: a producer error's text may carry the record's key.
            raise AuditError(
                f"could not write to {self.topic} ({type(exc).__name__}); the look-up was not made"
            ) from None

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.timeout)
