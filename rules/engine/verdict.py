"""What one call of the engine works with and concludes: options, contexts, the verdict.

Shared by every part of the engine (arbitration, timers, goals, RM capacity), so it holds
types and small pure helpers only, and imports no other part.
"""

from __future__ import annotations

import decimal
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from rules.language.expressions import read_field
from rules.ruleset import CompiledRule
from schemas.actions import Action
from schemas.capacity import RmRequest
from schemas.conversions import Conversion
from schemas.decisions import Decision
from schemas.events import Event
from schemas.state import CustomerState, PendingTimer


@dataclass(frozen=True)
class EngineOptions:
    """Time tolerances shared by the live worker and offline replays."""

    #: Events this far behind the newest seen still update windowed features.
    allowed_lateness: timedelta = timedelta(minutes=10)
    #: An absence timer fires this long after it is due, so a late exit event still counts.
    timer_grace: timedelta = timedelta(seconds=30)
    #: Event times further ahead of the clock than this do not move a customer's watermark:
    #: one event stamped hours ahead (a device clock, a producer bug) would otherwise make
    #: every correctly stamped event after it "too late" for windowed features.
    max_future_skew: timedelta = timedelta(minutes=5)


#: The tolerances when a caller does not choose its own.
DEFAULT_OPTIONS = EngineOptions()


class EvaluationContext:
    """The roots an expression reads, and event time as ``now``.

    ``memo`` caches condition results for this one moment: the ruleset shares one compiled
    object per distinct condition text, so a condition many rules repeat runs once.

    A plain slotted class rather than a frozen dataclass: one is built for every event, and
    a frozen dataclass pays an ``object.__setattr__`` call per field.
    """

    __slots__ = ("memo", "now", "roots")

    def __init__(
        self, roots: Mapping[str, Any], now: datetime, memo: dict[int, bool] | None = None
    ) -> None:
        self.roots = roots
        self.now = now
        self.memo: dict[int, bool] = {} if memo is None else memo


@dataclass(frozen=True)
class RuleFailure:
    """A rule (or a feature) that raised at run time, e.g. a division by zero.

    The rule did not fire (its decision is recorded as suppressed with reason
    ``rule_error``); a feature keeps its previous value. ``error`` is the exception's type
    and message: it goes to the decision record, never to a log, since an event's values
    can appear in it.
    """

    rule_id: str
    error: str
    kind: Literal["rule", "feature"] = "rule"


#: What decimal's signals mean: their own text is a list of classes, "[<class ...>]".
_DECIMAL_SIGNALS: tuple[tuple[type[ArithmeticError], str], ...] = (
    (decimal.DivisionByZero, "division by zero"),
    (decimal.Overflow, "the number grew too large"),
    (decimal.InvalidOperation, "invalid arithmetic (e.g. 0 / 0)"),
)


def failure_text(exc: Exception) -> str:
    """An exception as one bounded line for a decision's reason."""
    message = next((m for kind, m in _DECIMAL_SIGNALS if isinstance(exc, kind)), str(exc))
    text = f"{type(exc).__name__}: {message}"
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass(frozen=True)
class TimerChange:
    """An absence wait started, cancelled by an exit event, fired, or dropped."""

    rule_id: str
    change: str  # "scheduled" | "cancelled" | "fired" | "dropped"


#: How a contact left: decided as its input arrived (``direct``), fired by an absence wait, a
#: wave or a decision window (``timer``), sent when a deferral ended (``deferred``: quiet
#: hours, an RM's next working day), or through the RM capacity queue (``rm_queue``).
ActionPath = Literal["direct", "timer", "deferred", "rm_queue"]
ACTION_PATHS: tuple[ActionPath, ...] = ("direct", "timer", "deferred", "rm_queue")


@dataclass(frozen=True)
class ActionTiming:
    """When a contact was due, and by which path it left: the drivers measure lateness.

    A contact that waited on purpose (an absence wait, quiet hours, the next working day)
    is late only past the moment it was due, not past its triggering event; without this,
    only contacts decided on their event could be timed at all.
    """

    path: ActionPath
    due_at: datetime


@dataclass(frozen=True)
class Verdict:
    """Everything ``decide`` concluded; the caller persists ``state`` and emits the rest."""

    state: CustomerState
    decisions: list[Decision] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    evaluated: tuple[str, ...] = ()
    duplicate: bool = False
    late: bool = False
    failures: list[RuleFailure] = field(default_factory=list)
    timers: list[TimerChange] = field(default_factory=list)
    conversions: list[Conversion] = field(default_factory=list)
    rm_requests: list[RmRequest] = field(default_factory=list)
    #: For channel feedback: "applied", "duplicate", "unknown_action" or "wrong_channel".
    feedback: str | None = None
    #: For applied feedback: seconds from the contact to what the channel reported.
    feedback_after_s: float | None = None

    #: When the customer's earliest pending timer should fire (for the scheduler).
    wake_up_at: datetime | None = None
    #: For each action, by ``action_id``: its path and when it was due.
    timings: Mapping[str, ActionTiming] = field(default_factory=dict)


def new_verdict(values: dict[str, Any]) -> Verdict:
    """``Verdict(**values)`` without its ``__init__``: every event builds one.

    A frozen dataclass sets each of its 14 fields through ``object.__setattr__``, a few
    microseconds per event; this hands over ``values`` as the instance dictionary instead.
    ``values`` must hold every field, in declaration order, as ``__init__`` would store
    them (:meth:`rules.engine.moment.Moment.verdict` builds it so); it becomes the
    verdict's own dictionary, so the caller must not keep it.
    """
    verdict: Verdict = object.__new__(Verdict)
    object.__setattr__(verdict, "__dict__", values)
    return verdict


@dataclass
class Fired:
    """A rule that fired at one moment, with what it fired on."""

    rule: CompiledRule
    context: EvaluationContext
    event: Event
    evidence: dict[str, Any]
    #: For a campaign's later wave: the timer it fired from (campaign, wave, parent action).
    wave_of: PendingTimer | None = None
    #: When its contact is due and by which path; ``None``: at its event, decided directly.
    timing: ActionTiming | None = None

    def due(self) -> ActionTiming:
        """The contact's timing: a fired timer's, or due at its event when decided directly."""
        return self.timing or ActionTiming("direct", self.event.occurred_at)


def holds(conditions: Any, context: EvaluationContext) -> bool:
    """All ``conditions`` hold (each condition evaluated once per moment, memoised)."""
    memo = context.memo
    for condition in conditions:
        result = memo.get(id(condition))
        if result is None:
            result = memo[id(condition)] = bool(condition.evaluate(context))
        if not result:
            return False
    return True


def evidence(rule: CompiledRule, context: EvaluationContext) -> dict[str, Any]:
    """The values of every field the rule's conditions read, for the decision's audit."""
    values: dict[str, Any] = {}
    for path in rule.evidence_paths:
        head, *rest = path.split(".")
        if not rest and head != "now":
            continue  # a whole record is not evidence, and would bloat the audit trail
        value: Any = context.now if head == "now" else context.roots.get(head)
        for name in rest:
            value = read_field(value, name)
        values[path] = value
    return values


def digest(prefix: str, *parts: str) -> str:
    """A deterministic id: the same inputs always give the same decision or action id."""
    return prefix + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def in_holdout(customer_id: str, rule_id: str, percent: float) -> bool:
    """Stable assignment: the same customer is always in or out of a rule's holdout."""
    if percent <= 0:
        return False
    hashed = hashlib.blake2b(f"{rule_id}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(hashed, "big") % 10_000 < percent * 100


#: Timers that wait for something that may come late (an exit event, a channel's report):
#: they fire ``timer_grace`` after they are due.
WAITS = frozenset({"absence", "wave"})


class Due(Protocol):
    """A timer as far as its firing time goes (a stored timer, or the scheduler's view)."""

    @property
    def due_at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...


def fires_at(timer: Due, grace: timedelta) -> datetime:
    """When a timer fires: absence waits ``grace`` late, deferred contacts on time.

    The grace lets a late exit event still cancel the wait; a deferred contact has nothing
    to wait for once its quiet hours end.
    """
    return timer.due_at + grace if timer.kind in WAITS else timer.due_at


def timer_timing(timer: Due, grace: timedelta) -> ActionTiming:
    """A contact fired by ``timer`` is due when the timer fires (a wait's grace included).

    The grace is deliberate (a late exit event may still cancel the wait), so lateness
    counts only what the scheduler, the broker and the worker added after it.
    """
    path: ActionPath = "deferred" if timer.kind == "deferred" else "timer"
    return ActionTiming(path, fires_at(timer, grace))
