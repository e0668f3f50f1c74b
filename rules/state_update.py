"""How events and profile updates change the per-customer state record (pure functions)."""

from __future__ import annotations

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
    update: dict[str, object] = {
        "event_counts": counts,
        "last_seen": last_seen,
        "recent_event_ids": [*state.recent_event_ids, event.event_id][-RECENT_EVENT_IDS:],
    }
    if isinstance(event, AppClick):
        update["last_screen"] = event.screen
    return state.model_copy(update=update)


def is_duplicate(state: CustomerState, event: Event) -> bool:
    """A re-delivered event: same id seen recently for this customer."""
    return event.event_id in state.recent_event_ids
