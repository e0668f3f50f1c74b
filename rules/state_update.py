"""How events and profile updates change the per-customer state record (pure functions)."""

from __future__ import annotations

import hashlib

from schemas.events import AppClick, Event
from schemas.profile import CustomerProfile
from schemas.state import RECENT_EVENT_IDS, CustomerState


def new_state(customer_id: str) -> CustomerState:
    return CustomerState(customer_id=customer_id)


def apply_profile(state: CustomerState, profile: CustomerProfile) -> CustomerState:
    """Keep the newest profile: a profile replayed out of order must not undo a withdrawal."""
    if state.profile is not None and state.profile.updated_at > profile.updated_at:
        return state
    return state.model_copy(update={"profile": profile})


def apply_event(state: CustomerState, event: Event) -> CustomerState:
    """Fold one event into the counters rules read."""
    kind = event.event_type
    counts = dict(state.event_counts)
    counts[kind] = counts.get(kind, 0) + 1
    last_seen = dict(state.last_seen)
    previous = last_seen.get(kind)
    if previous is None or event.occurred_at > previous:
        last_seen[kind] = event.occurred_at
    watermark = state.watermark
    if watermark is None or event.occurred_at > watermark:
        watermark = event.occurred_at
    update: dict[str, object] = {
        "watermark": watermark,
        "event_counts": counts,
        "last_seen": last_seen,
        "recent_event_ids": [*state.recent_event_ids, event_fingerprint(event)][-RECENT_EVENT_IDS:],
    }
    if isinstance(event, AppClick):
        update["last_screen"] = event.screen
    return state.model_copy(update=update)


def is_duplicate(state: CustomerState, event: Event) -> bool:
    """A re-delivered event: same id seen recently for this customer."""
    return event_fingerprint(event) in state.recent_event_ids


def event_fingerprint(event: Event) -> str:
    """48 bits of the event id's hash: a third of the bytes, collisions ~never (2^-48 a pair)."""
    return hashlib.blake2b(event.event_id.encode(), digest_size=6).hexdigest()
