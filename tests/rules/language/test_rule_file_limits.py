"""Rule files are bounded: every bomb is one problem with file, line and column, fast.

The worker loads whatever ``kairos rules deploy`` accepted, so a file that is cheap to write
and expensive to load (nested aliases, deep nesting, a huge file, a duration that overflows
a date) must be refused by the loader itself, in well under a second and without a
traceback. Rendered params are bounded too: their values come from events at run time.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import main
from app.settings import EXAMPLE_RULES
from rules.errors import Problem, RuleError, RuleFileError
from rules.language.durations import MAX_DURATION, parse_duration
from rules.language.loader import MAX_FEATURES, MAX_RULES, compile_sources, load_ruleset
from rules.language.params import MAX_PARAM_BYTES, MAX_PARAMS_BYTES, ParamsTooLargeError
from rules.language.yaml_reader import MAX_ALIAS_EXPANSION, MAX_FILE_BYTES, MAX_NESTING, MAX_VALUES
from rules.ruleset import CompiledRule, Ruleset

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

#: The acceptance criterion of the "fail safe" issue: each bomb is refused within a second
#: (they take milliseconds; the bound is generous so a busy machine cannot make it flaky).
SECONDS = 1.0


def _rule(extra: str = "", params: str = "      a: 1\n") -> str:
    """One valid rule: ``extra`` from line 7, then ``params:`` (line 7 without ``extra``)."""
    return (
        "rules:\n"
        "  - id: bomb\n"
        "    version: 1\n"
        "    event: app_click\n"
        "    channels: [push]\n"
        "    template: t\n"
        f"{extra}"
        "    params:\n"
        f"{params}"
    )


def _alias_bomb(levels: int, width: int = 10) -> str:
    """Billion laughs: each level is a list of ``width`` aliases of the level below."""
    names = "abcdefghijklmnop"
    lines = ["      a: &a [" + ",".join(['"x"'] * width) + "]"]
    for level in range(1, levels):
        name, below = names[level], names[level - 1]
        lines.append(f"      {name}: &{name} [" + ",".join([f"*{below}"] * width) + "]")
    return _rule(params="\n".join(lines) + "\n")


def _refused(text: str, name: str = "bomb.yaml") -> tuple[Problem, float]:
    """The one problem of ``text``, and how long refusing it took."""
    started = time.perf_counter()
    with pytest.raises(RuleFileError) as caught:
        compile_sources({name: text})
    elapsed = time.perf_counter() - started
    (problem,) = caught.value.problems
    assert problem.file == name
    assert problem.line >= 1 and problem.column >= 1
    assert "Traceback" not in str(problem) and "\n" not in str(problem)
    return problem, elapsed


BOMBS = {
    "alias bomb, 7 levels": (_alias_bomb(7), "aliases repeat more than 64 KiB", None),
    "alias bomb, 9 levels": (_alias_bomb(9), "aliases repeat more than 64 KiB", None),
    "alias inside its own anchor": (_rule(params="      a: &a [1, *a]\n"), "inside the value", 8),
    "5,000 nested [ (flow)": (
        _rule(params="      a: " + "[" * 5000 + "]" * 5000 + "\n"),
        f"nested more than {MAX_NESTING} levels",
        8,
    ),
    "5,000 nested { (flow)": (
        _rule(params="      a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
        f"nested more than {MAX_NESTING} levels",
        8,
    ),
    "5,000 nested - (block)": (
        _rule(params="      a:\n        " + "- " * 5000 + "x\n"),
        f"nested more than {MAX_NESTING} levels",
        9,
    ),
    "300 nested mappings (block)": (
        _rule(params="".join(f"{' ' * (6 + i)}k{i}:\n" for i in range(300)) + " " * 306 + "1\n"),
        f"nested more than {MAX_NESTING} levels",
        None,
    ),
    "ttl 999999999999w": (_rule("    ttl: 999999999999w\n"), "at most 3650d", 7),
    "ttl of 5,000 digits": (_rule(f"    ttl: {'9' * 5000}d\n"), "at most 3650d", 7),
    "ttl 999999999d": (_rule("    ttl: 999999999d\n"), "at most 3650d", 7),
    "ttl as a huge number": (_rule("    ttl: 99999999999999\n"), "at most 3650d", 7),
    "ttl as a huge float": (_rule("    ttl: 1e300\n"), "at most 3650d", 7),
    "negative ttl": (_rule("    ttl: -5\n"), "cannot be negative", 7),
    "cooldown 999999999d": (_rule("    cooldown: 999999999d\n"), "at most 3650d", 7),
    "goal within 999999999d": (
        _rule("    goal: {event: app_click, within: 999999999d}\n"),
        "at most 3650d",
        7,
    ),
    "after within 999999999d": (
        _rule("    after: {event: app_click, within: 999999999d}\n"),
        "at most 3650d",
        7,
    ),
    "ttl 0s": (_rule("    ttl: 0s\n"), "longer than 0s", 7),
    "unless within 0s": (
        _rule("    unless:\n      within: 0s\n      events: [{event: app_click}]\n"),
        "longer than 0s",
        8,
    ),
    "a 5,000-digit number": (_rule("    priority: " + "1" * 5000 + "\n"), "cannot read", 7),
    "a date that does not exist": (
        _rule("    start_at: 2026-02-30\n"),
        "day is out of range for month",
        7,
    ),
    "a control character": (_rule(params="      a: b\x07\n"), "U+0007 is not allowed", 8),
    "10,001 values": (
        "rules: []\npolicy: {caps: [" + "1," * MAX_VALUES + "1]}\n",
        f"more than {MAX_VALUES:,} values in one file",
        2,
    ),
    "a huge file": ("rules: []\n" + "#" * (MAX_FILE_BYTES + 1), "the limit is 128 KiB", 1),
    "too many rules": (
        "rules:\n"
        + "".join(
            f"  - {{id: r{i}}}\n"  # counted before validation: nothing else is needed
            for i in range(MAX_RULES + 1)
        ),
        f"more than {MAX_RULES:,} rules",
        MAX_RULES + 2,
    ),
    "too many features": (
        "features:\n" + "".join(f"  - {{name: f{i}}}\n" for i in range(MAX_FEATURES + 1)),
        f"more than {MAX_FEATURES:,} features",
        MAX_FEATURES + 2,
    ),
}


@pytest.mark.parametrize(("text", "message", "line"), BOMBS.values(), ids=BOMBS.keys())
def test_each_bomb_is_one_located_problem_within_a_second(
    text: str, message: str, line: int | None
) -> None:
    problem, elapsed = _refused(text)
    assert message in problem.message
    if line is not None:
        assert problem.line == line
    assert elapsed < SECONDS, f"took {elapsed:.2f}s"


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    tracemalloc.start()
    try:
        _refused(_alias_bomb(9))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024  # expanded, nine levels of ten would be 10**9 strings


def test_the_problem_points_at_the_alias_that_crosses_the_limit() -> None:
    problem, _ = _refused(_alias_bomb(7))
    # expanded, a is 22 characters, b 222, c 2,222, d 22,222: the second *d of e crosses
    assert (problem.line, problem.column) == (12, len("      e: &e [*d,") + 1)
    assert problem.hint is not None and "write the values out" in problem.hint


def test_a_few_aliases_still_work() -> None:
    text = (
        "rules:\n"
        "  - id: one\n    version: 1\n    event: app_click\n"
        "    when: &home ['event.screen == \"home\"']\n"
        "    channels: &digital [push, sms]\n    template: t\n"
        "  - id: two\n    version: 1\n    event: app_click\n"
        "    when: *home\n    channels: *digital\n    template: t\n"
    )
    ruleset = compile_sources({"aliases.yaml": text})
    one, two = ruleset.rules
    assert one.channels == two.channels and one.conditions[0].source == two.conditions[0].source
    assert MAX_ALIAS_EXPANSION >= 16 * 1024


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    deep = "[" * (MAX_NESTING - 8) + "1" + "]" * (MAX_NESTING - 8)
    ruleset = compile_sources({"deep.yaml": _rule(params=f"      a: {deep}\n")})
    assert len(ruleset.rules) == 1


def test_a_huge_file_on_disk_is_not_even_read(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("rules: []\n" + "#" * (10 * 1024 * 1024))
    (tmp_path / "ok.yaml").write_text(_rule())
    started = time.perf_counter()
    with pytest.raises(RuleFileError) as caught:
        load_ruleset(tmp_path)
    assert time.perf_counter() - started < SECONDS
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "big.yaml") and (problem.line, problem.column) == (1, 1)
    assert "10,485,770 bytes; the limit is 128 KiB" in problem.message


@pytest.mark.parametrize("field", ["ttl", "cooldown"])
def test_ten_years_is_the_longest_duration(field: str) -> None:
    ruleset = compile_sources({"r.yaml": _rule(f"    {field}: 3650d\n")})
    assert getattr(ruleset.rules[0].spec, field) == MAX_DURATION
    problem, _ = _refused(_rule(f"    {field}: 3651d\n"))
    assert (problem.line, problem.column) == (7, len(f"    {field}: ") + 1)
    assert (
        problem.message
        == f"rule 'bomb', {field}: duration '3651d' is too long: at most 3650d (10 years)"
    )


def test_a_feature_window_must_be_positive_and_at_most_ten_years() -> None:
    feature = "features:\n  - {name: f, aggregate: count, event: app_click, window: %s}\n"
    problem, _ = _refused(feature % "0s")
    assert "window: must be longer than 0s" in problem.message
    problem, _ = _refused(feature % "522w")
    assert "at most 3650d" in problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=30),
        st.builds(
            "{}{}{}{}".format,
            st.sampled_from(["", " ", "0", "-", "+", "\t"]),
            st.integers(min_value=0, max_value=10**40),
            st.sampled_from(["", " "]),
            st.sampled_from([*"smhdwSMx", "d ", "ms", ""]),
        ),
    )
)
def test_any_duration_text_is_a_timedelta_or_a_value_error(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert timedelta(0) <= parsed <= MAX_DURATION


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
def test_any_ttl_is_loaded_or_refused_as_a_problem(text: str) -> None:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    try:
        ruleset = compile_sources({"r.yaml": _rule(f'    ttl: "{escaped}"\n')})
    except RuleFileError as exc:
        assert all(p.file == "r.yaml" and p.line >= 1 and p.column >= 1 for p in exc.problems)
    else:
        assert timedelta(0) < ruleset.rules[0].spec.ttl <= MAX_DURATION


# -- params ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    screen: str


@dataclass(frozen=True)
class _Profile:
    tier: str = "mass"


@dataclass(frozen=True)
class _Ctx:
    roots: dict[str, Any]
    now: datetime = NOW


def _params_rule(params: dict[str, str]) -> CompiledRule:
    lines = "".join(f"      {name}: {json.dumps(value)}\n" for name, value in params.items())
    ruleset: Ruleset = compile_sources({"p.yaml": _rule(params=lines)})
    return ruleset.rules[0]


def _render(rule: CompiledRule, screen: str = "home") -> dict[str, Any]:
    roots = {"event": _Event(screen), "profile": _Profile(), "state": None, "features": {}}
    return rule.render_params(_Ctx(roots))


def test_text_between_placeholders_is_interpolated() -> None:
    rule = _params_rule(
        {
            "both": "{{ profile.tier }} / {{ event.screen }}",
            "glued": "{{profile.tier}}{{event.screen}}",
            "framed": "Hi {{ profile.tier }}!",
            "alone": "{{ event.screen }}",
            "plain": "no placeholders }} here",
        }
    )
    assert _render(rule) == {
        "both": "mass / home",
        "glued": "masshome",
        "framed": "Hi mass!",
        "alone": "home",
        "plain": "no placeholders }} here",
    }


def test_a_value_that_is_one_placeholder_keeps_its_type() -> None:
    rule = _params_rule({"length": " {{ len(event.screen) }} ", "text": "{{ len(event.screen) }}!"})
    assert _render(rule) == {"length": 4, "text": "4!"}


def test_a_bad_placeholder_among_several_is_located() -> None:
    with pytest.raises(RuleFileError) as caught:
        _params_rule({"a": "{{ profile.tier }} / {{ event.scren }}"})
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (8, 10)
    assert "param 'a'" in problem.message and problem.hint == "did you mean 'screen'?"


def test_a_rendered_value_over_the_limit_raises_without_the_value() -> None:
    rule = _params_rule({"screen": "{{ event.screen }}"})
    assert _render(rule, "s" * MAX_PARAM_BYTES) == {"screen": "s" * MAX_PARAM_BYTES}
    with pytest.raises(ParamsTooLargeError) as caught:
        _render(rule, "é" * (MAX_PARAM_BYTES // 2 + 1))  # two bytes each in UTF-8
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuleError)
    assert "param 'screen'" in str(caught.value) and "é" not in str(caught.value)


def test_rendered_params_over_the_total_limit_raise() -> None:
    count = MAX_PARAMS_BYTES // MAX_PARAM_BYTES + 1
    rule = _params_rule({f"p{i}": "x{{ event.screen }}" for i in range(count)})
    with pytest.raises(ParamsTooLargeError, match=f"more than {MAX_PARAMS_BYTES} bytes"):
        _render(rule, "s" * (MAX_PARAM_BYTES - 1))


def test_literal_params_over_the_limits_are_refused_at_load() -> None:
    problem, _ = _refused(_rule(params=f"      a: {'x' * (MAX_PARAM_BYTES + 1)}\n"))
    assert (problem.line, problem.column) == (8, 10)
    assert f"param 'a': 1,025 bytes; the limit is {MAX_PARAM_BYTES:,}" in problem.message
    many = "".join(f"      p{i}: {'x' * 1000}\n" for i in range(5))
    problem, _ = _refused(_rule(params=many))
    assert (problem.line, problem.column) == (7, 5)
    assert f"the limit is {MAX_PARAMS_BYTES:,}" in problem.message


def test_placeholders_do_not_count_towards_the_literal_limit() -> None:
    text = "{{ event.screen }}" * 100  # 1,800 characters written, none of them literal
    rule = _params_rule({"a": text})
    assert _render(rule, "s") == {"a": "s" * 100}


# -- the command and arbitrary damage ------------------------------------------------------------


def test_validate_prints_one_line_per_problem_for_a_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "laughs.yaml").write_text(_alias_bomb(9))
    (tmp_path / "deep.yaml").write_text(_rule(params="      a: " + "[" * 5000 + "\n"))
    assert main(["rules", "validate", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'deep.yaml'}:8:74: lists and mappings nested")
    assert lines[1].startswith(f"{tmp_path / 'laughs.yaml'}:12:17: alias *d makes")
    assert lines[2:] == ["2 problem(s); ruleset refused"]


_EXAMPLE = (EXAMPLE_RULES / "loan_dropoff.yaml").read_text()
_DAMAGE = st.lists(
    st.sampled_from([*"[]{}:-&*!|>'\"#,?\n \t0a.", "{{", "}}", "&a ", "*a", "<<: ", "!!set "]),
    max_size=12,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_EXAMPLE)), _DAMAGE, st.integers(0, 20))
def test_a_damaged_rule_file_is_loaded_or_refused_never_a_traceback(
    position: int, inserted: str, removed: int
) -> None:
    text = _EXAMPLE[:position] + inserted + _EXAMPLE[position + removed :]
    try:
        compile_sources({"damaged.yaml": text})
    except RuleFileError as exc:
        assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)
