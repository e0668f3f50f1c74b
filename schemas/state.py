"""The per-customer state record kept in the changelog-backed RocksDB table.

It is versioned (``state_version``) because it outlives deployments: a worker must read
records written by the previous release from the changelog. Keep it small — it is
serialised on every update — and bounded: lists here have hard caps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.profile import CustomerProfile

#: How many recent event ids are remembered to drop re-deliveries.
RECENT_EVENT_IDS = 64


class CustomerState(BaseModel):
    """What Kairos knows about one customer, enough to evaluate rules without a lookup."""

    model_config = ConfigDict(extra="ignore")

    state_version: Literal[1] = 1
    customer_id: str
    profile: CustomerProfile | None = None
    event_counts: dict[str, int] = {}
    last_seen: dict[str, AwareDatetime] = {}
    last_screen: str | None = None
    recent_event_ids: list[str] = []
    contacts_sent: int = 0
    last_contact_at: AwareDatetime | None = None
