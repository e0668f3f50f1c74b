"""RM capacity arithmetic, shared by the capacity agent and offline replays."""

from __future__ import annotations

from schemas.capacity import RmReply, RmRequest


def counter_key(request: RmRequest) -> str:
    """One counter per RM (or branch) and working day."""
    return f"{request.capacity_key}|{request.day}"


def admits(request: RmRequest, used: int) -> bool:
    """Whether the RM's day still has room for this contact."""
    return used < request.daily_limit


def refusal(request: RmRequest) -> RmReply:
    """The answer to the customer's partition when the day is full."""
    return RmReply(
        customer_id=request.action.customer_id,
        rule_id=request.action.rule_id,
        capacity_key=request.capacity_key,
        day=request.day,
        when_full=request.when_full,
        retry_at=request.retry_at,
        start_event=request.start_event,
    )
