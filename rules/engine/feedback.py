"""Hearing back: a channel's report folded into the contact it is about.

The customer's recent contacts remember a short reference to each action
(:func:`schemas.feedback.action_ref`), so a report finds its contact without a lookup
elsewhere. Statuses only move forward (a late "delivered" never undoes an "opened"); a
report is applied once, however often the channel re-sends it. Two reports change the
contact policy at once:

* a **hard bounce** marks the channel unreachable for the customer until their profile
  changes (a new number, a reinstalled app), so no rule tries it again meanwhile;
* an **unsubscribe** withdraws that channel's consent (until the bank's profile says
  otherwise) and cancels the contacts deferred on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from rules.engine import outcomes, timers, waves
from schemas.copying import evolve
from schemas.feedback import STATUS_RANK, Feedback, FeedbackStatus, action_ref
from schemas.ids import fingerprint
from schemas.state import RECENT_EVENT_IDS

if TYPE_CHECKING:
    from rules.engine.moment import Moment

#: What became of one report: applied to a contact, a re-send, about no known contact
#: (an action older than the bounded history, or another system's id), or naming another
#: channel than its action's (applying it would withdraw or bar the wrong channel).
FeedbackResult = Literal["applied", "duplicate", "unknown_action", "wrong_channel"]


def feedback_fingerprint(feedback: Feedback) -> str:
    """The report's id as the state remembers it (beside the event ids), to skip re-sends."""
    return "f" + fingerprint(feedback.feedback_id)


def apply(moment: Moment, feedback: Feedback) -> tuple[FeedbackResult, float | None]:
    """Fold ``feedback`` into the customer's state; what became of it.

    When applied, also the seconds from the contact to what the channel reported.
    """
    state = moment.state
    fingerprint = feedback_fingerprint(feedback)
    if fingerprint in state.recent_event_ids:
        return "duplicate", None
    seen = [*state.recent_event_ids[1 - RECENT_EVENT_IDS :], fingerprint]
    ref = action_ref(feedback.action_id)
    contacts = list(state.contacts)
    index = next((i for i in range(len(contacts) - 1, -1, -1) if contacts[i].ref == ref), None)
    if index is None:
        moment.state = evolve(state, {"recent_event_ids": seen})
        return "unknown_action", None
    contact = contacts[index]
    if contact.channel is not feedback.channel:
        moment.state = evolve(state, {"recent_event_ids": seen})
        return "wrong_channel", None
    update: dict[str, object] = {"recent_event_ids": seen}
    if STATUS_RANK[feedback.status] > STATUS_RANK[contact.status]:
        contacts[index] = contact._replace(status=feedback.status, status_at=feedback.occurred_at)
        update["contacts"] = contacts
    settled = outcomes.settles(contact, contacts[index])
    if feedback.status is FeedbackStatus.FAILED and feedback.failure == "hard":
        update["unreachable"] = {**state.unreachable, feedback.channel: feedback.occurred_at}
    withdraw = feedback.status is FeedbackStatus.UNSUBSCRIBED and state.profile is not None
    if withdraw and state.profile is not None:
        consent = evolve(state.profile.consent, {feedback.channel.value: False})
        update["profile"] = evolve(state.profile, {"consent": consent})
    moment.state = evolve(state, update)
    if settled:
        outcomes.record(moment, [contacts[index]])
    if withdraw:
        timers.withdraw_deferred(moment)  # deferred contacts on that channel are cancelled
    waves.on_feedback(moment, feedback)
    return "applied", max((feedback.occurred_at - contact.at).total_seconds(), 0.0)
