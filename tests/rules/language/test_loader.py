from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.settings import EXAMPLE_RULES
from rules.errors import RuleFileError
from rules.language.loader import load_ruleset

BAD = """\
rules:
  - id: one
    version: 1
    event: drop_off
    when:
      - event.flw == "personal_loan_application"
      - "event.step >= 'three'"
    channels: [push, fax]
    template: t
    priorty: 3
  - id: two
    version: 1
    event: app_click
    when: event.platform == "windows"
    channels: [push]
    template: t
    ttl: 3 days
"""


#: One valid rule in flow style; ``%s`` adds keys to it.
_ONE = "rules:\n  - {id: x, version: 1, event: app_click, channels: [sms], template: t%s}\n"


def test_the_example_pack_loads() -> None:
    ruleset = load_ruleset(EXAMPLE_RULES)
    assert {r.id for r in ruleset.rules} == {
        "loan-dropoff-rm-call",
        "loan-dropoff-digital-nudge",
        "loan-dropoff-sms-follow-up",
        "salary-wealth-offer",
        "attrition-rm-retention",
        "mortgage-calculator-rm-booking",
        "first-card-purchase-welcome",
        "dormant-reactivation",
    }
    assert set(ruleset.features) >= {"wealth_screen_views_14d", "avg_balance_30d"}
    assert ruleset.version == load_ruleset(EXAMPLE_RULES).version


def test_every_problem_is_reported_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(RuleFileError) as caught:
        load_ruleset(tmp_path)
    found = {(p.line, p.column): (p.message, p.hint) for p in caught.value.problems}
    assert all(p.file == str(path) for p in caught.value.problems)
    assert "has no field 'flw'" in found[(6, 9)][0] and found[(6, 9)][1] == "did you mean 'flow'?"
    assert "compares a number with a string" in found[(7, 10)][0]
    assert "channels.1" in found[(8, 22)][0]
    assert (
        "unknown key 'priorty'" in found[(10, 5)][0]
        and found[(10, 5)][1] == "did you mean 'priority'?"
    )
    assert "'windows' is not a possible value" in found[(14, 29)][0]
    assert "bad duration" in found[(17, 10)][0]
    assert len(caught.value.problems) == 6


def test_duplicate_rule_ids_across_files_are_refused(tmp_path: Path) -> None:
    rule = "rules:\n  - {id: same, version: 1, event: app_click, channels: [sms], template: t}\n"
    (tmp_path / "a.yaml").write_text(rule)
    (tmp_path / "b.yaml").write_text(rule)
    with pytest.raises(RuleFileError) as caught:
        load_ruleset(tmp_path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("b.yaml") and "duplicate rule id 'same'" in problem.message
    assert "a.yaml:2" in (problem.hint or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [\n", "YAML:"),
        ("- just a list\n", "must be a mapping with 'rules:', 'features:' or 'policy:'"),
        ("rules: []\nextra: 1\n", "unknown top-level key 'extra'"),
        (_ONE % ", TTL: 1h", r"2:73: rule 'x': unknown key 'TTL' \(hint: did you mean 'ttl'\?\)"),
        (_ONE % ", ~: 1", "2:73: rule 'x': unknown key 'None'"),
        (_ONE % ", when: [{a: 1}]", "2:80: rule 'x', when.0: Input should be a valid string"),
        (_ONE.replace("app_click", "[app_click]") % "", "2:32: rule 'x', event: Input should be"),
        (_ONE % ", start_at: 2026-02-30", "2:83: YAML: cannot read '2026-02-30': day is out of"),
        ("%YAML 1.1\n---\nrules: !!set x\n", "3:8: YAML: cannot read 'x': not a valid"),
        ("rules: \x00\n", "1:8: YAML: character U[+]0000 is not allowed"),
        ("policy:\n  rm_capacity: {daily_limit: 1, timezone: No/Where}\n", "2:3: policy: No time"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RuleFileError, match=message):
        load_ruleset(tmp_path)


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(EXAMPLE_RULES)]) == 0
    assert "OK: 8 rules" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text(BAD)
    assert main(["rules", "validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.yaml'}:6:9:" in err and "ruleset refused" in err


#: Problems of every kind in one file: unknown keys, bad values, expressions in every part
#: of a rule (conditions, unless, goal, after), a duplicate id and a wave after no rule.
EVERY_KIND = """\
features:
  - {name: broken, aggregate: sum, event: transaction, value: event.amout}
rules:
  - id: a
    version: 1
    event: drop_off
    when:
      - event.stepp >= 3
      - event.flow == 3
      - features.broken > 1
    channels: [push]
    template: t
    priorty: 5
    unless:
      within: 30m
      events:
        - event: app_click
          when: event.scren == "x"
    goal:
      event: transaction
      when: event.categry == "x"
      within: 7d
  - id: a
    version: 1
    event: drop_off
    channels: [push]
    template: t
    cooldwn: 1d
  - id: b
    version: 1
    event: drop_off
    channels: [fax]
    template: t
    wave: {after: zzz, unless: [opened], within: 1d, extra: 1}
  - id: c
    version: 1
    event: drop_off
    channels: [sms]
    template: t
    ttl: 0s
    after:
      event: app_click
      within: 1h
      when: event.screeen == "x"
"""


def test_every_problem_of_a_file_is_reported_in_one_run(tmp_path: Path) -> None:
    """Once it took three runs: keys first, then expressions, then the duplicate id."""
    (tmp_path / "bad.yaml").write_text(EVERY_KIND)
    with pytest.raises(RuleFileError) as caught:
        load_ruleset(tmp_path)
    found = [(p.line, p.message) for p in caught.value.problems]
    expected = [
        (2, "has no field 'amout'"),
        (8, "has no field 'stepp'"),
        (9, "compares a string with a number"),
        (13, "unknown key 'priorty'"),
        (18, "has no field 'scren'"),
        (21, "has no field 'categry'"),
        (23, "duplicate rule id 'a'"),
        (28, "unknown key 'cooldwn'"),
        (32, "Input should be 'sms', 'push' or 'rm'"),
        (34, "wave after unknown rule 'zzz'"),
        (34, "unknown key 'extra'"),
        (40, "ttl"),
        (44, "has no field 'screeen'"),
    ]
    for line, text in expected:
        assert any(line == at and text in message for at, message in found), (line, text, found)
    # the broken feature is reported once, not again in the rule that reads it
    assert sum("broken" in message for _, message in found) == 1
    assert len(found) == len(expected), found
