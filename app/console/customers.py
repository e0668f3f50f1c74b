"""The customer page's data: one customer's state from the workers, as a timeline.

"Why did, or didn't, this customer hear from us?" is answered by the worker that owns the
customer's partition, through its customer API (``GET /customers/{id}`` with the bearer
token, :mod:`app.worker.web`); any worker forwards to the owner, so the console asks the
configured workers in turn until one answers. The console keeps no copy of the state: a
look-up shows it as it is now, and nothing of it is cached or logged.

:func:`timeline` turns the answer into what a support agent reads, newest first: the
events last seen, each decision with its reason (in words, from :data:`REASONS`), the
contacts made and what their channels reported, and what is still pending (a deferred
contact, an absence wait, a goal being watched). The workers keep a short note of each
customer's last few decisions only; the console's store (:class:`CustomerDecisions`) keeps
their latest decisions whole — the reason's text, the evidence the rule read, the trigger
events and what the contact's channel reported — so the timeline shows those, and a
worker's note only for a decision the store has not read yet (it follows the topics a
moment behind).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from app.console.model import CustomerDecision
from schemas.decisions import Reason

log = logging.getLogger(__name__)

#: How long one worker may take to answer before the next one is asked.
WORKER_TIMEOUT_S = 5.0

#: Every reason code in words, for people who never read the rules guide.
REASONS: dict[str, str] = {
    Reason.RULE_MATCHED: "The rule matched and the contact was made.",
    Reason.NO_PROFILE: "No profile of this customer had arrived yet, so nothing could be sent.",
    Reason.MARKETING_OPT_OUT: "The customer opted out of all marketing.",
    Reason.NO_CONSENT: "The customer gave no consent on any channel the rule may use.",
    Reason.PUSH_DISABLED: "Push notifications are off on the customer's device.",
    Reason.ARBITRATION_LOST: "Another rule won the same moment: one contact per moment.",
    Reason.EXPIRED: "The contact's time ran out before it could be sent.",
    Reason.COOLDOWN: "The customer heard from this rule too recently (cooldown).",
    Reason.MAX_PER_CUSTOMER: "The rule already contacted this customer as often as it may.",
    Reason.HOLDOUT: "The customer is in the rule's holdout group: not contacted on purpose, "
    "to measure uplift.",
    Reason.FREQUENCY_CAP: "The customer reached a contact cap for the channel or day.",
    Reason.QUIET_HOURS: "It was quiet hours in the customer's time zone.",
    Reason.CONSENT_WITHDRAWN: "The customer withdrew consent before the contact was due.",
    Reason.RULE_WITHDRAWN: "The rule was withdrawn (a deploy) before the contact was due.",
    Reason.RM_CAPACITY: "The relationship manager's day was full.",
    Reason.UNREACHABLE: "Every channel the rule may use bounced for this customer.",
    Reason.FATIGUE: "The customer ignored the channel's last contacts, so it rests.",
    Reason.RULE_ERROR: "The rule failed at run time; the error is counted for the rule's owner.",
}

EntryKind = Literal["event", "decision", "action", "feedback", "pending", "goal", "note"]
#: Where a decision's entry comes from: the store's whole record, or a worker's short note.
EntrySource = Literal["store", "worker"]


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline.

    A decision the store kept also has the worker's own ``reason_text``, its ``evidence``
    (each field the rule's conditions read, with its value as text), the ids of the events
    that triggered it, and for a contact its action (the store's pseudonym) and what its
    channel reported furthest.
    """

    at: datetime | None
    kind: EntryKind
    title: str
    detail: str = ""
    outcome: str | None = None
    reason_code: str | None = None
    evidence: Mapping[str, str] = field(default_factory=dict)
    reason_text: str = ""
    trigger_event_ids: Sequence[str] = ()
    action: str = ""
    action_status: str = ""
    action_status_at: datetime | None = None
    deferred_until: datetime | None = None
    source: EntrySource | None = None


@dataclass(frozen=True)
class CustomerView:
    """What the customer page shows: a found customer's profile summary and timeline."""

    found: bool
    message: str = ""
    served_by: str = ""
    profile: Mapping[str, str] = field(default_factory=dict)
    entries: Sequence[TimelineEntry] = ()


class CustomerLookupError(Exception):
    """No worker could answer (all down, or the console's token refused)."""


class CustomerSource(Protocol):
    """Where a customer's state comes from: the workers' customer API."""

    async def fetch(self, customer_id: str) -> tuple[int, dict[str, Any]]: ...


@runtime_checkable
class CustomerDecisions(Protocol):
    """A store that can give one customer's decision records (optional).

    The workers keep only a short note of each recent decision; a store that follows the
    decisions topic gives the reason text, the evidence the rule read, the trigger events
    and the contact's channel status (:class:`app.console.store.ConsoleStore`). ``key`` is
    the store's keyed hash of an id, which matches a worker's note to a stored decision.
    """

    def key(self, identifier: str) -> str: ...

    def customer_decisions(self, customer_id: str, limit: int) -> list[CustomerDecision]: ...


class WorkerCustomerApi:
    """Asks the workers' ``/customers/{id}`` in turn until one gives an answer.

    The id is in the request's path to the worker (its API is built that way), never in a
    URL of the console; workers run without an access log, and this class logs only which
    worker failed and how, never the path.
    """

    def __init__(
        self, base_urls: Sequence[str], token: SecretStr | None, timeout: float = WORKER_TIMEOUT_S
    ) -> None:
        self.base_urls = [url.rstrip("/") for url in base_urls if url.strip()]
        self.token = token
        self.timeout = timeout

    async def fetch(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        """The first worker's (status, JSON body) that is not unreachable or 503."""
        if self.token is None:
            raise CustomerLookupError(
                "the console has no KAIROS_CUSTOMER_API_TOKEN, so it cannot ask the workers"
            )
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"}
        path = f"/customers/{quote(customer_id, safe='')}"
        problems = []
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            for base in self.base_urls:
                try:
                    async with session.get(base + path) as response:
                        body = await response.json(content_type=None)
                        status = response.status
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    problems.append(f"{base}: {type(exc).__name__}")
                    log.warning(
                        "Worker %s did not answer a customer look-up (%s)", base, type(exc).__name__
                    )
                    continue
                if status == 503:
                    problems.append(f"{base}: busy (503)")
                    continue
                if status == 401:
                    raise CustomerLookupError(
                        f"{base} refused the console's KAIROS_CUSTOMER_API_TOKEN (401)"
                    )
                return status, body if isinstance(body, dict) else {}
        raise CustomerLookupError(
            "no worker answered: " + ("; ".join(problems) or "KAIROS_CONSOLE_WORKER_URLS is empty")
        )


def worker_urls(setting: str) -> list[str]:
    """``KAIROS_CONSOLE_WORKER_URLS``, ';'-separated like the broker URL."""
    return [part.strip() for part in setting.split(";") if part.strip()]


def view_of(
    status: int,
    body: Mapping[str, Any],
    decisions: Sequence[CustomerDecision] = (),
    key: Callable[[str], str] | None = None,
) -> CustomerView:
    """The page for a worker's answer (status, body) and, if any, the store's decisions.

    ``key`` (the store's :meth:`CustomerDecisions.key`) matches the worker's notes to the
    store's decisions, so that a decision both have is shown once, whole.
    """
    if status == 404:
        error = str(body.get("error", ""))
        if "off" in error:
            return CustomerView(
                found=False,
                message="The workers' customer API is off: set KAIROS_CUSTOMER_API_TOKEN on "
                "the workers and the console.",
            )
        return CustomerView(
            found=False,
            message="Kairos has no state for this customer: none of their events or profiles "
            "has been seen (or the id is mistyped). With no state, no rule fired for them.",
        )
    if status != 200:
        return CustomerView(found=False, message=f"The worker answered {status}.")
    state = body.get("state") or {}
    return CustomerView(
        found=True,
        served_by=str(body.get("served_by", "")),
        profile=profile_summary(state.get("profile")),
        entries=timeline(state, body.get("recent_decisions") or [], decisions, key),
    )


def profile_summary(profile: Mapping[str, Any] | None) -> dict[str, str]:
    """What contact policy reads of the profile, in words: consent first."""
    if not profile:
        return {"profile": "none received: every rule is suppressed as no_profile"}
    consent = profile.get("consent") or {}
    granted = [channel for channel in ("sms", "push", "rm") if consent.get(channel)]
    return {
        "tier": str(profile.get("tier", "")),
        "consent": ", ".join(granted) or "none",
        "marketing opt-out": "yes" if profile.get("marketing_opt_out") else "no",
        "push enabled": "yes" if profile.get("push_enabled") else "no",
        "time zone": str(profile.get("timezone", "UTC")),
        "profile updated": str(profile.get("updated_at", "")),
    }


def timeline(
    state: Mapping[str, Any],
    notes: Sequence[Mapping[str, Any]],
    decisions: Sequence[CustomerDecision] = (),
    key: Callable[[str], str] | None = None,
) -> list[TimelineEntry]:
    """Every dated thing the state holds and the store's decisions, newest first.

    Undated entries come last. A worker's note of a decision the store also has (matched by
    the decision id's ``key``) is left out: the store's record says more.
    """
    entries: list[TimelineEntry] = []
    counts = state.get("event_counts") or {}
    for event_type, at in (state.get("last_seen") or {}).items():
        seen = counts.get(event_type)
        entries.append(
            TimelineEntry(
                _time(at),
                "event",
                f"last {event_type} event",
                f"{seen} seen in all" if seen is not None else "",
            )
        )
    entries += _decision_entries(notes, decisions, key)
    for contact in state.get("contacts") or []:
        entries.append(
            TimelineEntry(
                _time(contact.get("at")),
                "action",
                f"{str(contact.get('channel', '')).upper()} sent by {contact.get('rule_id')}",
            )
        )
        status = contact.get("status")
        if status and status != "sent":
            entries.append(
                TimelineEntry(
                    _time(contact.get("status_at")) or _time(contact.get("at")),
                    "feedback",
                    f"{str(contact.get('channel', '')).upper()} from {contact.get('rule_id')}: "
                    f"{status}",
                    outcome=str(status),
                )
            )
    for channel, at in (state.get("unreachable") or {}).items():
        entries.append(
            TimelineEntry(
                _time(at),
                "feedback",
                f"{str(channel).upper()} hard-bounced",
                "not used again until the profile changes",
                outcome="failed",
            )
        )
    for timer in state.get("timers") or []:
        kind = timer.get("kind", "absence")
        what = {
            "absence": "waiting to see whether the customer comes back",
            "deferred": "a contact deferred (quiet hours or the RM's next day)",
            "window": "arbitration window open",
            "wave": f"wave {timer.get('wave')} of {timer.get('campaign')} pending",
        }.get(kind, kind)
        entries.append(
            TimelineEntry(
                _time(timer.get("due_at")), "pending", f"{timer.get('rule_id')}: due", what
            )
        )
    for goal in state.get("goals") or []:
        entries.append(
            TimelineEntry(
                _time(goal.get("until")),
                "goal",
                f"goal of {goal.get('rule_id')} watched until",
                f"group: {goal.get('group')}",
            )
        )
    dated = sorted((e for e in entries if e.at), key=lambda e: e.at or datetime.min, reverse=True)
    return dated + [e for e in entries if e.at is None]


def _decision_entries(
    notes: Sequence[Mapping[str, Any]],
    decisions: Sequence[CustomerDecision],
    key: Callable[[str], str] | None,
) -> list[TimelineEntry]:
    """The store's decisions whole, then the notes of decisions the store has not read yet."""
    entries = [_stored_entry(decision) for decision in decisions]
    stored = {decision.decision_key for decision in decisions}
    for note in notes:
        decision_id = note.get("decision_id")
        if key is not None and isinstance(decision_id, str) and key(decision_id) in stored:
            continue
        code = str(note.get("reason_code", ""))
        channel = note.get("channel")
        entries.append(
            TimelineEntry(
                _time(note.get("at")),
                "decision",
                f"{note.get('rule_id')} v{note.get('rule_version')}: {note.get('outcome')}"
                + (f" on {channel}" if channel else ""),
                REASONS.get(code, code),
                outcome=str(note.get("outcome", "")),
                reason_code=code,
                source="worker",
            )
        )
    return entries


def _stored_entry(decision: CustomerDecision) -> TimelineEntry:
    action = ""
    if decision.action_key:
        channel = (decision.channel or "").upper()
        action = f"{channel} contact {decision.action_key[:8]}".strip()
    return TimelineEntry(
        decision.decided_at,
        "decision",
        f"{decision.rule_id} v{decision.rule_version}: {decision.outcome}"
        + (f" on {decision.channel}" if decision.channel else ""),
        REASONS.get(decision.reason_code, decision.reason_code),
        outcome=decision.outcome,
        reason_code=decision.reason_code,
        evidence={name: evidence_text(value) for name, value in decision.evidence.items()},
        reason_text=decision.reason,
        trigger_event_ids=list(decision.trigger_event_ids),
        action=action,
        action_status=decision.action_status or ("no report yet" if action else ""),
        action_status_at=decision.action_status_at,
        deferred_until=decision.deferred_until,
        source="store",
    )


def evidence_text(value: Any) -> str:
    """An evidence value as a person reads it: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
