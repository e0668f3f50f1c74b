"""Rule tests written by marketing ops: given a profile and events, expect these contacts.

Test files live in a ``tests/`` folder next to the rules (``*.yaml``)::

    tests:
      - name: premium customer who abandons at step 4 gets an RM call after 30 minutes
        profile: {tier: private, rm_id: RM001}
        events:
          - {at: "2026-11-02T10:00:00+01:00", type: drop_off,
             flow: personal_loan_application, step: 4, steps_total: 5}
        until: "2026-11-02T11:00:00+01:00"
        expect:
          actions:
            - {rule: loan-dropoff-rm-call, channel: rm, params: {abandoned_step: 4}}

A channel's feedback is an event of ``type: feedback`` that names the ``rule`` whose latest
action it reports on (tests do not know action ids), with the ``status`` and, for a failure,
``failure: hard`` or ``soft``::

          - {at: "2026-11-02T11:00:00+01:00", type: feedback,
             rule: loan-dropoff-digital-nudge, status: failed, failure: hard}

They run offline through :class:`rules.offline.replay.Replay` — the live engine with event time
as the clock — so a passing test means the worker would decide the same.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from rules.engine import EngineOptions, Verdict
from rules.language.yaml_reader import plain_yaml
from rules.offline.replay import Replay
from rules.ruleset import Ruleset
from schemas.codec import EVENT_ADAPTER
from schemas.decisions import Outcome
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile

TEST_CUSTOMER = "TEST-CUSTOMER"
#: A test profile starts as a reachable mass-tier customer; a test overrides what matters.
DEFAULT_PROFILE: dict[str, Any] = {
    "tier": "mass",
    "consent": {"sms": True, "push": True, "rm": True},
    "push_enabled": True,
    "timezone": "Europe/Madrid",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedAction(_Strict):
    rule: str
    channel: str | None = None
    at: AwareDatetime | None = Field(default=None, description="created_at of the action")
    params: dict[str, Any] = Field(default_factory=dict, description="must be included")


class ExpectedDecision(_Strict):
    rule: str
    reason: str


class Expectation(_Strict):
    actions: list[ExpectedAction] = []
    suppressed: list[ExpectedDecision] | None = Field(
        default=None, description="When given, exactly these suppressions and holdouts."
    )


class RuleTest(_Strict):
    name: str
    profile: dict[str, Any] | None = Field(default_factory=dict)
    events: list[dict[str, Any]] = []
    until: AwareDatetime | None = None
    expect: Expectation


class RuleTestFile(_Strict):
    tests: list[RuleTest]


@dataclass
class TestResult:
    """The outcome of one rule test, with the differences when it failed."""

    file: str
    line: int
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def test_files(rules_path: Path) -> list[Path]:
    """Rule test files: ``*.yaml`` under a ``tests`` folder of the rules directory."""
    root = rules_path if rules_path.is_dir() else rules_path.parent
    return sorted(p for p in root.rglob("tests/*.y*ml") if p.is_file())


def _event(raw: dict[str, Any], counter: itertools.count[int]) -> Any:
    fields = dict(raw)
    fields["event_type"] = fields.pop("type", fields.get("event_type"))
    fields["occurred_at"] = fields.pop("at", fields.get("occurred_at"))
    fields.setdefault("event_id", f"test-{next(counter)}")
    fields.setdefault("customer_id", TEST_CUSTOMER)
    return EVENT_ADAPTER.validate_python(fields)


def _profile(raw: dict[str, Any] | None, first_event_at: datetime | None) -> CustomerProfile | None:
    if raw is None:
        return None  # a test of a customer Kairos has no profile for
    fields: dict[str, Any] = {**DEFAULT_PROFILE, **raw}
    fields.setdefault("customer_id", TEST_CUSTOMER)
    fields.setdefault(
        "updated_at", first_event_at or datetime.fromisoformat("2000-01-01T00:00:00+00:00")
    )
    return CustomerProfile.model_validate(fields)


def _describe_action(action: Any) -> str:
    when = action.created_at.isoformat()
    return f"{action.rule_id} via {action.channel.value} at {when} params={action.params}"


_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _feedback(raw: dict[str, Any], counter: itertools.count[int], actions: list[Any]) -> Any:
    """A ``type: feedback`` test input, about the latest action of its ``rule`` so far."""
    fields = dict(raw)
    fields.pop("type")
    rule = fields.pop("rule", None)
    action = next((a for a in reversed(actions) if a.rule_id == rule), None)
    if action is None:
        raise ValueError(f"feedback about rule {rule!r}, which has sent nothing yet")
    fields["occurred_at"] = fields.pop("at", fields.get("occurred_at"))
    fields.setdefault("feedback_id", f"test-feedback-{next(counter)}")
    fields.setdefault("customer_id", TEST_CUSTOMER)
    fields.setdefault("channel", action.channel.value)
    fields["action_id"] = action.action_id
    return Feedback.model_validate(fields)


def run_test(test: RuleTest, ruleset: Ruleset, options: EngineOptions) -> list[str]:
    """Run one test; returns what differed from the expectation (empty when it passed)."""
    counter = itertools.count(1)
    inputs = [raw if raw.get("type") == "feedback" else _event(raw, counter) for raw in test.events]
    replay = Replay(ruleset, options)
    first = min((i.occurred_at for i in inputs if not isinstance(i, dict)), default=None)
    profile = _profile(test.profile, first)
    if profile is not None:
        replay.profile(profile)
    verdicts: list[Verdict] = []
    for item in inputs:
        if isinstance(item, dict):  # what fell due before the report is sent first
            verdicts.extend(replay.advance(_INSTANT.validate_python(item.get("at"))))
            sent = [a for v in verdicts for a in v.actions]
            verdicts.extend(replay.feedback(_feedback(item, counter, sent)))
        else:
            verdicts.extend(replay.event(item))
    if test.until is not None:
        verdicts.extend(replay.advance(test.until))
    actions = [a for v in verdicts for a in v.actions]
    failures = _raised(verdicts, test.expect)
    withheld = [
        (d.rule_id, d.reason_code.value)
        for v in verdicts
        for d in v.decisions
        if d.outcome in (Outcome.SUPPRESSED, Outcome.HELD_OUT)
    ]
    failures += _compare_actions(test.expect.actions, actions)
    if test.expect.suppressed is not None:
        wanted = sorted((d.rule, d.reason) for d in test.expect.suppressed)
        if sorted(withheld) != wanted:
            failures.append(f"suppressed: expected {wanted}, got {sorted(withheld)}")
    return failures


def _raised(verdicts: list[Verdict], expect: Expectation) -> list[str]:
    """A rule or feature that raised fails the test, with the error, whatever else matched.

    The engine keeps going when a rule raises (it is suppressed as ``rule_error``), so the
    test would otherwise only show "expected 1 action(s), got 0" and hide the cause. A test
    that expects the ``rule_error`` suppression of a rule is testing exactly that.
    """
    expected = {d.rule for d in expect.suppressed or () if d.reason == "rule_error"}
    return [
        f"{failure.kind} {failure.rule_id!r} raised {failure.error}"
        for verdict in verdicts
        for failure in verdict.failures
        if not (failure.kind == "rule" and failure.rule_id in expected)
    ]


def _compare_actions(expected: list[ExpectedAction], actual: list[Any]) -> list[str]:
    failures = []
    if len(expected) != len(actual):
        failures.append(f"expected {len(expected)} action(s), got {len(actual)}:")
        failures.extend(f"  + {_describe_action(a)}" for a in actual)
        failures.extend(f"  - {e.rule} via {e.channel or 'any channel'}" for e in expected)
        return failures
    for index, (want, got) in enumerate(zip(expected, actual, strict=True), start=1):
        problems = []
        if want.rule != got.rule_id:
            problems.append(f"rule {got.rule_id!r} instead of {want.rule!r}")
        if want.channel is not None and want.channel != got.channel.value:
            problems.append(f"channel {got.channel.value!r} instead of {want.channel!r}")
        if want.at is not None and want.at != got.created_at:
            problems.append(f"at {got.created_at.isoformat()} instead of {want.at.isoformat()}")
        sent = got.model_dump(mode="json")["params"]  # as the channel system receives them
        for name, value in want.params.items():
            if sent.get(name) != value:
                problems.append(f"param {name}={sent.get(name)!r} instead of {value!r}")
        if problems:
            failures.append(f"action {index} ({_describe_action(got)}): " + "; ".join(problems))
    return failures


def run_file(
    path: Path, ruleset: Ruleset, options: EngineOptions | None = None
) -> list[TestResult]:
    """Run every test of one file; a malformed test is a failed result, never a crash."""
    options = options or EngineOptions()
    display = str(path)
    try:
        document = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        return [TestResult(display, line, "(file)", [f"YAML: {exc.problem}"])]
    if not isinstance(document, CommentedMap) or not isinstance(
        document.get("tests"), CommentedSeq
    ):
        return [
            TestResult(display, 1, "(file)", ["a test file must be a mapping with a 'tests:' list"])
        ]
    results = []
    for index, node in enumerate(document["tests"]):
        line = document["tests"].lc.item(index)[0] + 1
        name = (
            str(node.get("name", f"test {index + 1}"))
            if isinstance(node, dict)
            else f"test {index + 1}"
        )
        result = TestResult(display, line, name)
        try:
            test = RuleTest.model_validate(plain_yaml(node))
            result.failures = run_test(test, ruleset, options)
        except ValidationError as exc:
            result.failures = [
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
        except ValueError as exc:  # feedback about a rule that has sent nothing
            result.failures = [str(exc)]
        results.append(result)
    return results


def run_all(
    rules_path: Path, ruleset: Ruleset, options: EngineOptions | None = None
) -> list[TestResult]:
    """Every test under the rules directory."""
    return [
        result for path in test_files(rules_path) for result in run_file(path, ruleset, options)
    ]
