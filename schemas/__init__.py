"""The wire contract: pydantic models of everything Kairos reads from or writes to Kafka.

This package imports nothing else of Kairos, so producers and channel teams can depend
on it alone.
"""

from schemas.actions import Action, Channel, derive_action_id
from schemas.dead_letter import DeadLetter
from schemas.decisions import Decision, Outcome, Reason
from schemas.errors import InvalidEventError, KairosError
from schemas.events import EVENT_TYPES, AppClick, DropOff, Event, EventBase, Transaction
from schemas.profile import Consent, CustomerProfile
from schemas.state import CustomerState

__all__ = [
    "EVENT_TYPES",
    "Action",
    "AppClick",
    "Channel",
    "Consent",
    "CustomerProfile",
    "CustomerState",
    "DeadLetter",
    "Decision",
    "DropOff",
    "Event",
    "EventBase",
    "InvalidEventError",
    "KairosError",
    "Outcome",
    "Reason",
    "Transaction",
    "derive_action_id",
]
