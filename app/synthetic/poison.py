"""Malformed messages, one of each kind real producers send, for the dead-letter path."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from datetime import timedelta

from app.synthetic.config import DEFAULT_START


def poison_messages(rng: random.Random) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield ``(key, raw value)`` messages that Kairos must dead-letter, never process.

    Why: the dead-letter path is only trustworthy if the demo exercises it with the
    failures real producers make. One message of each kind, in this order, with the
    ``error_type`` that ``schemas.codec.decode_event`` reports:

    1. truncated JSON (``malformed_json``), sent without a key;
    2. an app click without ``customer_id`` (``missing_field``);
    3. a transaction whose amount is ``"lots"`` (``invalid_field``);
    4. an ``atm_withdrawal``, an event type Kairos does not know (``unknown_event_type``);
    5. an event without ``event_type`` (``missing_event_type``);
    6. a valid event keyed by another customer (``key_mismatch``).

    Args:
        rng: Source of the ids and timestamps; the same state yields the same messages.

    Yields:
        Kafka key (or ``None``) and value bytes.

    """
    number = rng.randint(1, 999_999)
    customer = f"C{number:06d}"
    key = customer.encode()
    when = (DEFAULT_START + timedelta(seconds=rng.randrange(86_400))).isoformat()

    def event_id() -> str:
        return f"evt-poison-{rng.randrange(10**9):09d}"

    def dump(value: Mapping[str, object]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    click = {
        "event_type": "app_click",
        "event_id": event_id(),
        "customer_id": customer,
        "occurred_at": when,
        "screen": "home",
        "platform": "ios",
    }
    yield None, dump(click)[: -rng.randint(5, 20)]
    yield key, dump({k: v for k, v in click.items() if k != "customer_id"})
    yield (
        key,
        dump(
            {
                "event_type": "transaction",
                "event_id": event_id(),
                "customer_id": customer,
                "occurred_at": when,
                "amount": "lots",
                "currency": "EUR",
                "direction": "debit",
                "category": "card_purchase",
            }
        ),
    )
    yield (
        key,
        dump(
            {
                "event_type": "atm_withdrawal",
                "event_id": event_id(),
                "customer_id": customer,
                "occurred_at": when,
                "amount": "60.00",
                "currency": "EUR",
            }
        ),
    )
    yield (
        key,
        dump({k: v for k, v in click.items() if k != "event_type"} | {"event_id": event_id()}),
    )
    other = f"C{(number % 999_999) + 1:06d}".encode()
    yield other, dump(click | {"event_id": event_id()})
