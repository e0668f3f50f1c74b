from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rules.language.expression_types import ExpressionError
from rules.language.expressions import compile_expression
from rules.language.scope import rule_scope
from schemas.codec import decode_event
from testkit.factories import profile, transaction

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ctx:
    roots: dict[str, Any]
    now: datetime = NOW


def _evaluate(source: str, **roots: Any) -> Any:
    return compile_expression(source, rule_scope("transaction")).evaluate(Ctx(roots))


def _event(**overrides: Any) -> Any:
    import json

    return decode_event(json.dumps(transaction("C1", **overrides)).encode())


def _profile(**overrides: Any) -> Any:
    from schemas.profile import CustomerProfile

    return CustomerProfile.model_validate(profile("C1", **overrides))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.amount >= 10000", True),
        ("event.amount > 12000.00", False),
        ("event.amount * 2 == 24000", True),
        ('event.category == "salary" and event.direction == "credit"', True),
        ('event.category in ["salary", "bonus"]', True),
        ('event.category not in ["salary"]', False),
        ('not (event.currency == "USD")', True),
        ('startswith(event.category, "sal")', True),
        ('contains(profile.tags, "vip")', True),
        ('lower("ABC") == "abc"', True),
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("profile.consent.sms == true", True),
        ("days_since(profile.updated_at) < 1", True),
    ],
)
def test_semantics(source: str, expected: bool) -> None:
    roots = {
        "event": _event(),
        "profile": _profile(tags=["vip"], updated_at=(NOW - timedelta(hours=2)).isoformat()),
    }
    assert _evaluate(source, **roots, state=None) is expected


def test_missing_values_read_as_null_and_never_satisfy_an_ordering() -> None:
    roots = {"event": _event(), "profile": None, "state": None}
    assert _evaluate('profile.tier == "mass"', **roots) is False
    assert _evaluate("event.balance_after > 0", **roots) is False
    assert _evaluate("event.balance_after < 0", **roots) is False
    assert _evaluate("event.balance_after == null", **roots) is True
    assert _evaluate("event.balance_after + 1", **roots) is None
    assert _evaluate("coalesce(event.balance_after, 7)", **roots) == 7


def test_float_literals_are_exact_decimals() -> None:
    assert _evaluate("0.1 + 0.2 == 0.3", event=None, profile=None, state=None) is True
    assert _evaluate("event.amount * 0.5", event=_event(), profile=None, state=None) == Decimal(
        "6000.000"
    )


def test_paths_read_are_recorded_for_evidence() -> None:
    compiled = compile_expression(
        "event.amount > 5 and profile.consent.sms and event.amount < 9", rule_scope("transaction")
    )
    assert compiled.paths == ("event.amount", "profile.consent.sms")


@pytest.mark.parametrize(
    ("source", "message", "hint"),
    [
        ("event.amout > 5", "has no field 'amout'", "did you mean 'amount'?"),
        ("evnt.amount > 5", "unknown name 'evnt'", "did you mean 'event'?"),
        ('event.amount > "5"', "compares a number with a string", "quote strings"),
        ('event.direction == "in"', "'in' is not a possible value", None),
        ("__import__('os')", "unknown function '__import__'", None),
        ("event.__class__", "has no field '__class__'", None),
        ("[x for x in event]", "ListComp is not allowed", None),
        ("lambda: 1", "Lambda is not allowed", None),
        ("event.amount ** 2", "Pow is not allowed", None),
        ("event.amount >", "syntax error", None),
        ("days_since()", "takes 1 argument", None),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(
    source: str, message: str, hint: str | None
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, rule_scope("transaction"))
    assert message in caught.value.message
    if hint:
        assert hint in (caught.value.hint or "")


def test_error_column_points_at_the_offending_part() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression('event.amount > 5 and event.catgory == "x"', rule_scope("transaction"))
    assert caught.value.column == len("event.amount > 5 and ")


def test_pathological_expressions_are_refused_not_crashing() -> None:
    for source in ("1 + " * 900 + "1", "-" * 1990 + "1", "x" * 3000):
        with pytest.raises(ExpressionError):
            compile_expression(source, rule_scope("transaction"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('event.amount == 3 + "a"', "adds a number and text"),
        ('event.category == "x" + 3', "adds a number and text"),
        ('event.category * 2 == "xx"', "'*' on text"),
        ('event.category - "x" == ""', "'-' on text"),
        ("-event.category == 1", "'-' needs a number"),
        ("event.amount / 0 > 1", "division by zero"),
        ("event.amount % 0 == 1", "division by zero"),
        ("event.amount + true > 1", "arithmetic on a bool"),
        ("days_since(event.amount) > 1", "days_since() takes datetime"),
        ("len(event.amount) > 1", "len() takes string or list"),
        ("round(event.category) > 1", "round() takes number"),
        ('lower(event.amount) == "x"', "lower() takes string"),
        ("startswith(event.category, 3)", "startswith() takes string"),
        ("contains(event.category, 3)", "looks for text in text"),
        ('coalesce(event.balance_after, "none") == 1', "coalesce() of a number and a string"),
    ],
)
def test_arithmetic_and_text_that_could_only_raise_are_refused_at_load(
    source: str, message: str
) -> None:
    """Each of these compiled before and raised TypeError (rule_error) on every event."""
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, rule_scope("transaction"))
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('event.category + "_x" == "salary_x"', True),
        ("event.amount - 1 + 2 * 3 > 5", True),
        ('coalesce(event.counterparty, "none") == "none"', True),
        ('contains(event.category, "sal")', True),
        ("round(event.amount / 3) == 17", True),
    ],
)
def test_well_typed_arithmetic_and_text_still_evaluate(source: str, expected: bool) -> None:
    event = _event(amount="50", category="salary", counterparty=None)
    assert _evaluate(source, event=event, profile=None, state=None, features={}) is expected


_FIELDS = [
    "event.amount",
    "event.category",
    "event.direction",
    "event.counterparty",
    "event.balance_after",
    "event.occurred_at",
    "profile.tier",
    "now",
]
_LITERALS = ["0", "1", "2.5", '"a"', '""', "true", "null", '["a", "b"]', "[1, 2]"]
_FUNCTIONS = ["days_since", "hours_since", "lower", "len", "round"]
_PAIR_FUNCTIONS = ["startswith", "contains", "coalesce"]


def _expressions() -> Any:
    from hypothesis import strategies as st

    leaves = st.sampled_from(_FIELDS + _LITERALS)

    def extend(inner: Any) -> Any:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(_FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(_PAIR_FUNCTIONS), inner, inner).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"
            ),
            inner.map(lambda e: f"-{e}"),
            st.tuples(inner, st.sampled_from(["==", "<", ">=", "in"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
        )

    return st.recursive(leaves, extend, max_leaves=6)


def test_an_expression_that_compiles_never_raises_a_type_error() -> None:
    """The type rules are complete for these operators: what loads cannot fail on type.

    Run-time arithmetic on data (a balance of 0 as a divisor) may still raise an
    ArithmeticError; that is data, counted as rule_error. A TypeError is a rule that
    could never have worked, and must be refused at load instead.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    events = [
        _event(amount="50", category="salary", counterparty=None, balance_after=None),
        _event(amount="0.01", category="x", counterparty="OTHERBANK", balance_after="-3"),
    ]
    profiles = [None, _profile(tier="private")]

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(source=_expressions(), which=st.integers(0, 1))
    def check(source: str, which: int) -> None:
        try:
            compiled = compile_expression(source, rule_scope("transaction"))
        except ExpressionError:
            return
        context = Ctx({"event": events[which], "profile": profiles[which], "state": None})
        try:
            compiled.evaluate(context)
        except ArithmeticError:
            pass  # data-dependent (x / balance with a balance of 0): rule_error at run time
        except TypeError as exc:
            raise AssertionError(f"{source!r} compiled, then raised {exc!r}") from exc

    check()
