"""How contacts end: ignored after a settable time, each settled once, counted by features."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.engine import apply_feedback, apply_profile_update, decide
from rules.engine.moment import Moment
from rules.engine.outcomes import settle_ignored
from rules.errors import RuleFileError
from rules.policy import CONTACT_HISTORY
from rules.ruleset import Ruleset
from schemas.actions import Action, Channel
from schemas.codec import decode_event, decode_profile
from schemas.feedback import SETTLING, Feedback, FeedbackStatus
from schemas.state import CustomerState
from testkit.factories import click, drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)

#: The issue's three examples: pushes ignored in 30 days, the push open rate over 90 days,
#: and the last contact's outcome; the policy calls a push ignored after 6 hours.
OUTCOME_FEATURES = """
features:
  - name: pushes_ignored_30d
    aggregate: count
    event: contact_outcome
    when: [event.channel == "push", event.outcome == "ignored"]
    window: 30d
  - name: push_open_rate_90d
    aggregate: avg
    event: contact_outcome
    value: event.engaged
    when: event.channel == "push"
    window: 90d
  - name: last_outcome
    aggregate: last
    event: contact_outcome
    value: event.outcome
policy:
  ignored_after: {push: 6h}
"""


@pytest.fixture(scope="module")
def rules() -> Ruleset:
    return ruleset_from(IMMEDIATE_RULES + OUTCOME_FEATURES)


def _profiled() -> CustomerState:
    raw = json.dumps(
        profile("C1", timezone="UTC", updated_at=(NOW - timedelta(days=1)).isoformat())
    ).encode()
    return apply_profile_update(None, decode_profile(raw))


def _push(rules: Ruleset, state: CustomerState, at: datetime) -> tuple[CustomerState, Action]:
    """A drop-off the digital nudge answers with one push, at ``at``."""
    event = decode_event(json.dumps(drop_off("C1", step=4, occurred_at=at.isoformat())).encode())
    verdict = decide(event, state, rules, at)
    [action] = verdict.actions
    return verdict.state, action


def _report(action: Action, status: str, at: datetime) -> Feedback:
    return Feedback.model_validate(
        {
            "feedback_id": f"fb-{next(_ids)}",
            "action_id": action.action_id,
            "customer_id": "C1",
            "channel": action.channel.value,
            "status": status,
            "occurred_at": at.isoformat(),
        }
    )


def _features_at(rules: Ruleset, state: CustomerState, at: datetime) -> dict[str, Any]:
    """The outcome features as a rule would read them at a click at ``at``."""
    event = decode_event(
        json.dumps(click("C1", screen="home", occurred_at=at.isoformat())).encode()
    )
    verdict = decide(event, state, rules, at)
    view = {
        name: rules.features[name].read(verdict.state.features.get(name), at)
        for name in ("pushes_ignored_30d", "push_open_rate_90d", "last_outcome")
    }
    view["statuses"] = [c.status for c in verdict.state.contacts]
    return view


def test_a_contact_nobody_answers_is_ignored_once_its_time_has_passed(rules: Ruleset) -> None:
    state, _ = _push(rules, _profiled(), NOW)
    early = _features_at(rules, state, NOW + timedelta(hours=5))
    assert early["statuses"] == ["sent"] and early["pushes_ignored_30d"] == 0
    later = _features_at(rules, state, NOW + timedelta(hours=7))
    assert later["statuses"] == ["ignored"]
    assert later["pushes_ignored_30d"] == 1
    assert later["push_open_rate_90d"] == 0
    assert later["last_outcome"] == "ignored"


def test_the_ignored_time_is_the_policys_and_a_delivered_report_does_not_settle(
    rules: Ruleset,
) -> None:
    state, action = _push(rules, _profiled(), NOW)
    delivered = apply_feedback(state, _report(action, "delivered", NOW), rules, NOW)
    assert delivered.state.contacts[-1].status == "delivered"
    assert _features_at(rules, delivered.state, NOW + timedelta(hours=6))["statuses"] == ["ignored"]
    contact = decide(
        decode_event(json.dumps(click("C1", screen="home", occurred_at=NOW.isoformat())).encode()),
        delivered.state,
        rules,
        NOW + timedelta(hours=6),
    ).state.contacts[0]
    assert contact.status_at == NOW + timedelta(hours=6), "ignored as of when it became so"


def test_an_open_settles_the_contact_as_engaged_and_counts_once(rules: Ruleset) -> None:
    state, action = _push(rules, _profiled(), NOW)
    opened = apply_feedback(
        state, _report(action, "opened", NOW + timedelta(minutes=5)), rules, NOW
    )
    clicked = apply_feedback(
        opened.state, _report(action, "clicked", NOW + timedelta(minutes=6)), rules, NOW
    )
    seen = _features_at(rules, clicked.state, NOW + timedelta(days=2))
    assert seen["statuses"] == ["clicked"]
    assert seen["push_open_rate_90d"] == 1, "opened then clicked is one engaged contact"
    assert seen["last_outcome"] == "engaged"
    assert seen["pushes_ignored_30d"] == 0


def test_the_open_rate_and_the_ignored_count_follow_a_customers_history(
    rules: Ruleset,
) -> None:
    state = _profiled()
    for day, answer in enumerate(["opened", None, None, "clicked"]):
        at = NOW + timedelta(days=day)
        state, action = _push(rules, state, at)
        if answer is not None:
            state = apply_feedback(
                state, _report(action, answer, at + timedelta(hours=1)), rules, at
            ).state
    seen = _features_at(rules, state, NOW + timedelta(days=10))
    assert seen["statuses"] == ["opened", "ignored", "ignored", "clicked"]
    assert seen["pushes_ignored_30d"] == 2
    assert seen["push_open_rate_90d"] == pytest.approx(0.5)
    assert seen["last_outcome"] == "engaged"
    # a month and more later the ignored pushes have left the 30-day window
    assert _features_at(rules, state, NOW + timedelta(days=40))["pushes_ignored_30d"] == 0


def test_an_engagement_reported_after_the_contact_was_called_ignored_still_shows(
    rules: Ruleset,
) -> None:
    state, action = _push(rules, _profiled(), NOW)
    late = NOW + timedelta(hours=8)
    verdict = apply_feedback(state, _report(action, "opened", late), rules, late)
    assert verdict.state.contacts[-1].status == "opened"
    seen = _features_at(rules, verdict.state, late)
    assert seen["pushes_ignored_30d"] == 1, "it settled once, as ignored"


def test_a_feature_can_only_read_what_a_contact_outcome_has() -> None:
    bad = OUTCOME_FEATURES.replace("event.engaged", "event.amount")
    with pytest.raises(RuleFileError, match="amount"):
        ruleset_from(IMMEDIATE_RULES + bad)


_STATUSES = ["sent", "ignored", *(status.value for status in FeedbackStatus)]


@settings(max_examples=200, deadline=None)
@given(
    contacts=st.lists(
        st.tuples(
            st.sampled_from(list(Channel)),
            st.integers(min_value=-10 * 24 * 60, max_value=60),  # minutes from now
            st.sampled_from(_STATUSES),
        ),
        max_size=CONTACT_HISTORY,
    ),
    push_after_minutes=st.integers(min_value=1, max_value=10 * 24 * 60),
)
def test_exactly_the_open_contacts_whose_wait_has_passed_are_ignored(
    contacts: list[tuple[Channel, int, str]], push_after_minutes: int
) -> None:
    """Any mix of channels, ages (out of order too) and statuses, any shortest wait."""
    rules = ruleset_from(
        IMMEDIATE_RULES + f"policy:\n  ignored_after: {{push: {push_after_minutes}m}}\n"
    )
    waits = rules.policy.ignored_after
    state = CustomerState.model_validate(
        {
            "customer_id": "C1",
            "contacts": [
                {
                    "channel": channel,
                    "rule_id": "r",
                    "at": NOW + timedelta(minutes=minutes),
                    "status": status,  # a settled or reported one as of when it was sent
                    "status_at": None if status == "sent" else NOW + timedelta(minutes=minutes),
                }
                for channel, minutes, status in contacts
            ],
        }
    )
    history = state.contacts
    moment = Moment(state, rules, NOW, timedelta(0))
    settle_ignored(moment)
    for before, after in zip(history, moment.state.contacts, strict=True):
        due = before.at + waits[before.channel]
        if before.status in SETTLING or due > NOW:
            assert after == before, "a settled or still open contact is left as it was"
        else:
            assert (after.status, after.status_at) == ("ignored", due), "ignored as of its due"
