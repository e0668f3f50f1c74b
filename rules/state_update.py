"""How events and profile updates change the per-customer state record (pure functions)."""

from __future__ import annotations

from datetime import datetime

from schemas import ids
from schemas.copying import evolve
from schemas.events import AppClick, Event
from schemas.profile import CustomerProfile
from schemas.state import RECENT_EVENT_IDS, CustomerState


def new_state(customer_id: str) -> CustomerState:
    return CustomerState(customer_id=customer_id)


def apply_profile(state: CustomerState, profile: CustomerProfile) -> CustomerState:
    """Keep the newest profile: a profile replayed out of order must not undo a withdrawal.

    A profile as old as the stored one is a re-delivery of it: the stored one is kept, since
    it may carry what the channels reported since (an unsubscribe withdraws that channel's
    consent until the bank's next profile says otherwise).
    """
    if state.profile is not None and state.profile.updated_at >= profile.updated_at:
        return state
    if state.unreachable and profile != state.profile:
        # A changed profile (a new number, a reinstalled app) may reach the customer again.
        return evolve(state, {"profile": profile, "unreachable": {}})
    return evolve(state, {"profile": profile})


def apply_event(state: CustomerState, event: Event) -> CustomerState:
    """Fold one event into the counters rules read."""
    return evolve(state, event_update(state, event, event_fingerprint(event)))


def event_update(
    state: CustomerState,
    event: Event,
    fingerprint: str,
    watermark_cap: datetime | None = None,
) -> dict[str, object]:
    """The fields :func:`apply_event` changes, for a caller that folds in more at once.

    ``fingerprint`` is the event's :func:`event_fingerprint`: ``decide`` has it already
    from the duplicate check, and hashing is a measurable part of an event's cost. The
    watermark moves no further than ``watermark_cap`` (the clock plus a tolerated skew).
    """
    kind = event.event_type
    occurred_at = event.occurred_at
    counts = dict(state.event_counts)
    counts[kind] = counts.get(kind, 0) + 1
    last_seen = dict(state.last_seen)
    previous = last_seen.get(kind)
    if previous is None or occurred_at > previous:
        last_seen[kind] = occurred_at
    stamped = (
        occurred_at if watermark_cap is None or occurred_at <= watermark_cap else watermark_cap
    )
    watermark = state.watermark
    if watermark is None or stamped > watermark:
        watermark = stamped
    update: dict[str, object] = {
        "watermark": watermark,
        "event_counts": counts,
        "last_seen": last_seen,
        # the last RECENT_EVENT_IDS of ids + [fingerprint], without copying the whole list twice
        "recent_event_ids": [*state.recent_event_ids[1 - RECENT_EVENT_IDS :], fingerprint],
    }
    if isinstance(event, AppClick):
        update["last_screen"] = event.screen
    return update


def is_duplicate(state: CustomerState, event: Event) -> bool:
    """A re-delivered event: same id seen recently for this customer."""
    return event_fingerprint(event) in state.recent_event_ids


def event_fingerprint(event: Event) -> str:
    """The event id as the state remembers it, to recognise a re-delivery."""
    return ids.fingerprint(event.event_id)
