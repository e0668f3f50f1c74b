"""``decide``: one event, one customer's state, one ruleset in, decisions and actions out.

Pure and synchronous — no Kafka, no Faust, no clock of its own — so the live worker, the
tests and (later) the backtest run exactly the same code, and it is unit-tested in
microseconds. Rules see the event, the profile and the state *before* this event; they
are evaluated in event time (``now`` in an expression is the event's ``occurred_at``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.consent import Reachability, choose_channel
from rules.expressions import read_field
from rules.ruleset import CompiledRule, Ruleset
from rules.state_update import apply_event, apply_profile, is_duplicate, new_state
from schemas.actions import Action, derive_action_id
from schemas.decisions import Decision, Outcome, Reason
from schemas.events import Event
from schemas.profile import CustomerProfile
from schemas.state import CustomerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationContext:
    """The roots an expression reads, and event time as ``now``."""

    roots: Mapping[str, Any]
    now: datetime


@dataclass(frozen=True)
class RuleFailure:
    """A rule whose evaluation raised at run time (e.g. division by zero): it did not fire."""

    rule_id: str
    error: str


@dataclass(frozen=True)
class Verdict:
    """Everything ``decide`` concluded; the caller persists ``state`` and emits the rest."""

    state: CustomerState
    decisions: list[Decision] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    rules_evaluated: int = 0
    duplicate: bool = False
    failures: list[RuleFailure] = field(default_factory=list)


def _evidence(rule: CompiledRule, context: EvaluationContext) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in rule.evidence_paths:
        head, *rest = path.split(".")
        value: Any = context.now if head == "now" else context.roots.get(head)
        for name in rest:
            value = read_field(value, name)
        if not rest and head in ("profile", "state"):
            continue  # a whole record is not evidence, and would bloat the audit trail
        values[path] = value
    return values


def _fires(rule: CompiledRule, context: EvaluationContext) -> bool:
    return all(condition.evaluate(context) for condition in rule.conditions)


def _decision_id(customer_id: str, rule: CompiledRule, event_ids: list[str]) -> str:
    material = "\x1f".join([customer_id, rule.id, str(rule.version), *event_ids])
    return "dec_" + hashlib.blake2b(material.encode(), digest_size=16).hexdigest()


def apply_profile_update(state: CustomerState | None, profile: CustomerProfile) -> CustomerState:
    """Fold a profile update into the state (no rule is triggered by a profile change yet)."""
    return apply_profile(state or new_state(profile.customer_id), profile)


def decide(event: Event, state: CustomerState | None, ruleset: Ruleset, now: datetime) -> Verdict:
    """Evaluate the rules triggered by ``event`` and settle who gets contacted, how.

    ``now`` is the decision (processing) time, used for ``created_at`` and expiry; rules
    themselves are evaluated in event time.
    """
    state = state or new_state(event.customer_id)
    if is_duplicate(state, event):
        return Verdict(state=state, duplicate=True)
    context = EvaluationContext(
        roots={"event": event, "profile": state.profile, "state": state}, now=event.occurred_at
    )
    candidates = ruleset.for_event(event.event_type)
    fired: list[CompiledRule] = []
    failures: list[RuleFailure] = []
    for rule in candidates:
        try:
            if _fires(rule, context):
                fired.append(rule)
        except (ArithmeticError, TypeError, ValueError) as exc:
            failures.append(RuleFailure(rule.id, f"{type(exc).__name__}: {exc}"))

    event_ids = [event.event_id]
    settled: list[tuple[CompiledRule, Reachability]] = [
        (rule, choose_channel(state.profile, rule.channels)) for rule in fired
    ]
    # Arbitration: one contact per moment, the highest priority reachable rule; ties by id.
    reachable = sorted(
        (pair for pair in settled if pair[1].channel is not None),
        key=lambda pair: (-pair[0].priority, pair[0].id),
    )
    winner = reachable[0][0] if reachable else None

    decisions: list[Decision] = []
    actions: list[Action] = []
    for rule, reach in settled:
        decision_fields: dict[str, Any] = {
            "decision_id": _decision_id(event.customer_id, rule, event_ids),
            "customer_id": event.customer_id,
            "rule_id": rule.id,
            "rule_version": rule.version,
            "ruleset_version": ruleset.version,
            "trigger_event_ids": event_ids,
            "decided_at": now,
            "evidence": _evidence(rule, context),
            "channel": reach.channel,
        }
        expires_at = event.occurred_at + rule.ttl
        if reach.channel is None:
            outcome, code, why = Outcome.SUPPRESSED, reach.reason_code, reach.explanation
        elif rule is not winner:
            assert winner is not None
            outcome, code = Outcome.SUPPRESSED, Reason.ARBITRATION_LOST
            why = f"{winner.id} (priority {winner.priority}) won this moment"
        elif now >= expires_at:
            outcome, code = Outcome.SUPPRESSED, Reason.EXPIRED
            why = f"older than the rule's ttl {rule.ttl}; expired at {expires_at.isoformat()}"
        else:
            outcome, code = Outcome.SENT, Reason.RULE_MATCHED
            why = f"{rule.spec.description or rule.id} ({reach.explanation})"
            action_id = derive_action_id(
                customer_id=event.customer_id,
                rule_id=rule.id,
                rule_version=rule.version,
                channel=reach.channel,
                trigger_event_ids=event_ids,
            )
            decision_fields["action_id"] = action_id
            actions.append(
                Action(
                    action_id=action_id,
                    customer_id=event.customer_id,
                    channel=reach.channel,
                    rule_id=rule.id,
                    rule_version=rule.version,
                    ruleset_version=ruleset.version,
                    template=rule.spec.template,
                    params=rule.render_params(context),
                    priority=rule.priority,
                    created_at=now,
                    expires_at=expires_at,
                    trigger_event_ids=event_ids,
                    reason=why,
                )
            )
        decisions.append(Decision(outcome=outcome, reason_code=code, reason=why, **decision_fields))

    updated = apply_event(state, event)
    if actions:
        updated = updated.model_copy(
            update={"contacts_sent": updated.contacts_sent + len(actions), "last_contact_at": now}
        )
    return Verdict(
        state=updated,
        decisions=decisions,
        actions=actions,
        rules_evaluated=len(candidates),
        failures=failures,
    )
