"""How contacts end: each one settles once, and ``contact_outcome`` features count it.

A contact settles at the first report that decides it (an engagement, a failure, a
refusal, an unsubscribe; see :data:`schemas.feedback.SETTLING`) or, when the channel
reports none of these within the policy's ``ignored_after`` for that channel, as
``ignored``. Silence has no event of its own, so the check runs whenever the customer's
state is at hand (an event, a timer, a report): the contact is then stamped ignored as of
the instant it became so, which is exact for every rule and feature that reads it, since
they are only ever read at those same moments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.engine.windows import feed
from schemas.copying import evolve
from schemas.feedback import ENGAGED, IGNORED, SETTLING, ContactOutcome
from schemas.state import ContactRecord

if TYPE_CHECKING:
    from rules.engine.moment import Moment

#: The source name features use for contact outcomes (``event: contact_outcome``).
SOURCE = "contact_outcome"


def settle_ignored(moment: Moment) -> None:
    """Mark contacts that went unanswered past ``ignored_after`` as ignored, and count them."""
    contacts = moment.state.contacts
    if not contacts:
        return
    policy = moment.ruleset.policy
    ignored_after = policy.ignored_after
    now = moment.now
    # Runs on every event of a contacted customer, over up to CONTACT_HISTORY contacts:
    # one comparison sets aside every contact younger than the shortest wait, on any channel.
    open_since = now - policy.soonest_ignored
    settled: list[ContactRecord] | None = None
    for index, contact in enumerate(contacts):
        if contact.at > open_since or contact.status in SETTLING:
            continue
        due = contact.at + ignored_after[contact.channel]
        if due > now:
            continue
        if settled is None:
            settled = list(contacts)
        settled[index] = contact._replace(status=IGNORED, status_at=due)
    if settled is not None:
        newly = [c for old, c in zip(contacts, settled, strict=True) if c is not old]
        moment.state = evolve(moment.state, {"contacts": settled})
        record(moment, newly)


def record(moment: Moment, contacts: list[ContactRecord]) -> None:
    """Feed the ``contact_outcome`` features with ``contacts``, each just settled."""
    feeds = moment.ruleset.features_by_event.get(SOURCE, ())
    if not feeds:
        return
    state = moment.state
    features = state.features
    for contact in contacts:
        assert contact.status_at is not None  # settled contacts carry when
        outcome = ContactOutcome(
            channel=contact.channel,
            rule_id=contact.rule_id,
            status=contact.status,
            outcome=SETTLING[contact.status],
            engaged=contact.status in ENGAGED,
            sent_at=contact.at,
            occurred_at=contact.status_at,
        )
        changed = feed(feeds, features, outcome, state, outcome.occurred_at, moment.failures)
        features = changed if changed is not None else features
    if features is not state.features:
        moment.state = evolve(state, {"features": features})


def settles(before: ContactRecord, after: ContactRecord) -> bool:
    """Whether a report moved a contact from open to settled (it counts once)."""
    return before.status not in SETTLING and after.status in SETTLING
