from __future__ import annotations

import json

from schemas.codec import decode_event
from testkit.factories import click, transaction
from testkit.rulesets import ruleset_from

RULESET = ruleset_from(
    """
rules:
  - {id: calc, version: 1, event: app_click, when: 'event.screen == "mortgage_calculator"',
     channels: [sms], template: t}
  - {id: funds, version: 1, event: app_click,
     when: ['profile.tier == "mass"', 'event.screen in ["funds", "wealth_overview"]'],
     channels: [sms], template: t}
  - {id: any-click, version: 1, event: app_click, when: 'event.platform == "ios" or true',
     channels: [sms], template: t}
  - {id: salary, version: 1, event: transaction,
     when: 'event.category == "salary" and event.amount > 10', channels: [sms], template: t}
"""
)


def _candidates(raw: dict[str, object]) -> list[str]:
    return [r.id for r in RULESET.for_event(decode_event(json.dumps(raw).encode()))]


def test_only_rules_that_can_match_are_candidates() -> None:
    assert _candidates(click("C1", screen="mortgage_calculator")) == ["calc", "any-click"]
    assert _candidates(click("C1", screen="wealth_overview")) == ["funds", "any-click"]
    assert _candidates(click("C1", screen="home")) == ["any-click"]
    assert _candidates(transaction("C1", category="salary")) == ["salary"]
    assert _candidates(transaction("C1", category="card_purchase")) == []


def test_index_hints() -> None:
    hints = {r.id: r.index_hint for r in RULESET.rules}
    assert hints["calc"] == ("screen", frozenset({"mortgage_calculator"}))
    assert hints["funds"] == ("screen", frozenset({"funds", "wealth_overview"}))
    assert hints["any-click"] is None  # an "or" can hold without the equality
    assert hints["salary"] == ("category", frozenset({"salary"}))
