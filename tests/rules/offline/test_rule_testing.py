from __future__ import annotations

from pathlib import Path

import rules.offline.testing as rule_testing
from app.settings import EXAMPLE_RULES
from rules.language.loader import load_ruleset


def test_the_example_pack_passes_its_rule_tests() -> None:
    results = rule_testing.run_all(EXAMPLE_RULES, load_ruleset(EXAMPLE_RULES))
    assert len(results) >= 20
    failed = [f"{r.file}:{r.line} {r.name}: {r.failures}" for r in results if not r.passed]
    assert failed == []
    covered = {p.stem for p in rule_testing.test_files(EXAMPLE_RULES)}
    assert covered >= {
        "loan_dropoff",
        "salary_wealth",
        "attrition",
        "mortgage_interest",
        "card_welcome",
        "reactivation",
    }


def test_a_failing_test_explains_the_difference(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules: [{id: r, version: 1, event: app_click, channels: [sms], template: t,"
        " params: {screen: '{{ event.screen }}'}}]\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        """
tests:
  - name: wrong expectations
    events:
      - {at: "2026-11-02T10:00:00Z", type: app_click, screen: home, platform: ios}
    expect:
      actions:
        - {rule: r, channel: push, params: {screen: cards}}
  - name: expects nothing
    events:
      - {at: "2026-11-02T10:00:00Z", type: app_click, screen: home, platform: ios}
    expect: {actions: []}
  - name: bad event
    events:
      - {at: "2026-11-02T10:00:00Z", type: app_click, screen: home}
    expect: {actions: []}
"""
    )
    first, second, third = rule_testing.run_all(tmp_path, load_ruleset(tmp_path))
    assert (first.line, second.line, third.line) == (3, 9, 13)
    assert first.failures == [
        "action 1 (r via sms at 2026-11-02T10:00:00+00:00 params={'screen': 'home'}): "
        "channel 'sms' instead of 'push'; param screen='home' instead of 'cards'"
    ]
    assert second.failures[0] == "expected 0 action(s), got 1:"
    assert any("platform" in f for f in third.failures)


def test_a_rule_that_raises_fails_its_test_with_the_error_shown(tmp_path: Path) -> None:
    """Before, the test said only "expected 1 action(s), got 0" and hid the exception."""
    (tmp_path / "r.yaml").write_text(
        "rules: [{id: r, version: 1, event: transaction, channels: [sms], template: t,"
        " when: event.amount / event.balance_after > 1}]\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        """
tests:
  - name: an empty account
    events:
      - {at: "2026-11-02T10:00:00Z", type: transaction, amount: "10", currency: EUR,
         direction: debit, category: card_purchase, balance_after: "0"}
    expect:
      actions: [{rule: r}]
  - name: the error is what this test is about
    events:
      - {at: "2026-11-02T10:00:00Z", type: transaction, amount: "10", currency: EUR,
         direction: debit, category: card_purchase, balance_after: "0"}
    expect:
      actions: []
      suppressed: [{rule: r, reason: rule_error}]
"""
    )
    raised, expected = rule_testing.run_all(tmp_path, load_ruleset(tmp_path))
    assert raised.failures[0] == "rule 'r' raised DivisionByZero: division by zero"
    assert raised.failures[1] == "expected 1 action(s), got 0:"
    assert expected.passed, expected.failures
