"""Build rulesets from inline YAML in tests."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from rules.language.loader import compile_sources
from rules.ruleset import Ruleset
from schemas.deployment import RulesetBundle

#: Immediate rules (no waits) covering every channel, for tests of the plumbing.
IMMEDIATE_RULES = """
rules:
  - id: loan-dropoff-rm-call
    version: 1
    description: Premium customer abandoned a personal-loan application
    event: drop_off
    when:
      - event.flow == "personal_loan_application"
      - event.step >= 3
      - profile.tier in ["affluent", "private"]
    channels: [rm]
    template: rm_call
    params: {abandoned_step: "{{ event.step }}", rm_id: "{{ profile.rm_id }}"}
    priority: 90
    ttl: 48h
  - id: loan-dropoff-digital-nudge
    version: 1
    description: Customer abandoned a personal-loan application
    event: drop_off
    when:
      - event.flow == "personal_loan_application"
      - event.step >= 3
      - profile.tier not in ["affluent", "private"]
    channels: [push, sms]
    template: loan_application_resume
    params:
      resume_step: "{{ event.step }}"
      message: "You're {{ event.steps_total - event.step }} step(s) away"
    priority: 70
  - id: mortgage-calculator-interest
    version: 1
    event: app_click
    when: event.screen == "mortgage_calculator"
    channels: [push, sms]
    template: mortgage_advice
    priority: 40
    ttl: 12h
  - id: salary-wealth-offer
    version: 1
    event: transaction
    when: [event.category == "salary", event.amount >= 10000]
    channels: [push]
    template: wealth_offer
    priority: 60
"""


#: A feature and rules that divide by an event's balance: a zero balance must stop none of
#: them but the rule (or feature) that divides, and the moment's next rule still decides.
DIVIDING_RULES = """
features:
  - name: share_30d
    aggregate: avg
    event: transaction
    value: event.amount / event.balance_after
    window: 30d
rules:
  - id: share-of-balance
    version: 1
    event: transaction
    when: [event.category == "salary"]
    channels: [sms]
    template: big_share
    params: {share: "{{ event.amount / event.balance_after }}"}
    priority: 90
  - id: condition-divides
    version: 1
    event: transaction
    when: [event.amount / event.balance_after > 0.5]
    channels: [sms]
    template: divides
    priority: 80
  - id: salary-hello
    version: 1
    event: transaction
    when: [event.category == "salary"]
    channels: [push, sms]
    template: hello
    params: {text: "{{ profile.tier }} / {{ event.category }}"}
    priority: 10
"""


def sms_wave(within: str, ttl: str = "48h") -> str:
    """A second wave of the immediate rules' digital nudge: an SMS unless it was opened."""
    return f"""
  - id: nudge-sms-wave
    version: 1
    event: drop_off
    wave: {{after: loan-dropoff-digital-nudge, unless: [opened, clicked], within: {within}}}
    channels: [sms]
    template: loan_application_resume_sms
    params: {{resume_step: "{{{{ event.step }}}}"}}
    priority: 70
    ttl: {ttl}
"""


#: A rule that fails validation (a misspelt field, line 5): deploys must refuse it.
BROKEN_RULE = """\
rules:
  - id: broken
    version: 1
    event: app_click
    when: event.scren == "home"
    channels: [push]
    template: broken
"""


def broken_bundle(deployed_by: str) -> RulesetBundle:
    """A bundle holding :data:`BROKEN_RULE`, as if published past ``kairos rules deploy``."""
    return RulesetBundle(
        version="rs-rogue",
        files={"bad.yaml": BROKEN_RULE},
        deployed_at=datetime.now(UTC),
        deployed_by=deployed_by,
    )


def ruleset_from(text: str, name: str = "inline.yaml") -> Ruleset:
    return compile_sources({name: textwrap.dedent(text)})
