"""The compiler's single-closure forms must agree with the general ones they replace."""

from __future__ import annotations

import ast
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from rules.language.expressions import _COMPARE, _NO_CONTEXT, _compare_constant

LEFTS: list[Any] = [None, 0, 3, Decimal("2.5"), "a", "b", True, False]
LITERALS: list[Any] = [None, 0, 3, Decimal("2.5"), "a", True, frozenset({"a", 3}), frozenset()]
OPS = [ast.Eq(), ast.NotEq(), ast.Lt(), ast.LtE(), ast.Gt(), ast.GtE(), ast.In(), ast.NotIn()]


def _outcome(evaluate: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("value", evaluate())
    except TypeError as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
def test_compare_with_a_literal_matches_the_general_comparison(op: ast.cmpop) -> None:
    general = _COMPARE[type(op)]
    for literal in LITERALS:
        for left in LEFTS:
            fast = _compare_constant(op, lambda _c, v=left: v, literal)  # type: ignore[misc]  # a default-bound lambda
            got = _outcome(lambda f=fast: f(_NO_CONTEXT))  # type: ignore[misc]  # a default-bound lambda
            expected = _outcome(lambda v=left, w=literal: general(v, w))  # type: ignore[misc]  # a default-bound lambda
            assert got == expected, (left, type(op).__name__, literal)
