"""The rule expression language: a small, typed subset of Python syntax, compiled to closures.

Marketing ops write conditions such as ``event.step >= 3 and profile.tier in ["affluent",
"private"]``. The text is parsed with :mod:`ast` and only a whitelist of node types is
accepted; each node becomes a Python closure once, at load time. User text is never
handed to ``eval`` or ``compile``, so a rule can read customer data but cannot call,
import or reach anything else.

Semantics chosen for marketing data, where fields are often missing:

* a missing field or profile reads as ``null``; ``null`` compared with ``<``/``>`` is false,
  ``==`` / ``!=`` compare normally, arithmetic with ``null`` gives ``null``;
* ``true``/``false``/``null`` are accepted besides Python's spellings;
* decimal literals are exact (``Decimal``), so amounts compare and add without float error.

Every path an expression reads (``event.step``, ``profile.tier``) is recorded, so a
decision can show the evidence it was taken on. The static types and the compiled result
are in :mod:`rules.language.expression_types`.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rules.language.expression_types import (
    ANY,
    BOOL,
    DATETIME,
    LIST,
    NUMBER,
    STRING,
    CompiledExpression,
    Context,
    Evaluator,
    ExpressionError,
    FieldType,
)

#: Longer conditions are refused: nobody can review them, and ``ast`` recursion is bounded.
MAX_EXPRESSION_LENGTH = 2000


# -- runtime helpers -------------------------------------------------------------------


def read_field(value: Any, name: str) -> Any:
    """Attribute or key access that turns a missing link into ``None``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _null_safe(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        if left is None or right is None:
            return None
        return op(left, right)

    return apply


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if left is None or right is None:
            return False
        return op(left, right)

    return apply


def _contains(container: Any, item: Any) -> bool:
    if container is None or item is None:
        return False
    return bool(item in container)


_DAY = Decimal(86400)
_HOUR = Decimal(3600)


def _days_since(context: Context, moment: Any) -> Any:
    if moment is None:
        return None
    return Decimal((context.now - moment).total_seconds()) / _DAY


def _hours_since(context: Context, moment: Any) -> Any:
    if moment is None:
        return None
    return Decimal((context.now - moment).total_seconds()) / _HOUR


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: _ordered(operator.lt),
    ast.LtE: _ordered(operator.le),
    ast.Gt: _ordered(operator.gt),
    ast.GtE: _ordered(operator.ge),
    ast.In: lambda item, container: _contains(container, item),
    ast.NotIn: lambda item, container: not _contains(container, item),
}
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _null_safe(operator.add),
    ast.Sub: _null_safe(operator.sub),
    ast.Mult: _null_safe(operator.mul),
    ast.Div: _null_safe(operator.truediv),
    ast.Mod: _null_safe(operator.mod),
}

# name -> (arity, result kind, implementation taking the context first)
_FUNCTIONS: dict[str, tuple[int, str, Callable[..., Any]]] = {
    "days_since": (1, NUMBER, _days_since),
    "hours_since": (1, NUMBER, _hours_since),
    "startswith": (
        2,
        BOOL,
        lambda _c, text, prefix: (
            text is not None and prefix is not None and str(text).startswith(str(prefix))
        ),
    ),
    "contains": (2, BOOL, lambda _c, container, item: _contains(container, item)),
    "lower": (1, STRING, lambda _c, text: None if text is None else str(text).lower()),
    "len": (1, NUMBER, lambda _c, value: None if value is None else len(value)),
    "coalesce": (2, ANY, lambda _c, first, second: second if first is None else first),
    "round": (1, NUMBER, lambda _c, value: None if value is None else round(value)),
}
#: The kinds each function's arguments may have (``any`` is always accepted: a field whose
#: type is not known until run time).
_ARGUMENT_KINDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "days_since": ((DATETIME,),),
    "hours_since": ((DATETIME,),),
    "startswith": ((STRING,), (STRING,)),
    "contains": ((LIST, STRING), (NUMBER, STRING, BOOL, DATETIME)),
    "lower": ((STRING,),),
    "len": ((STRING, LIST),),
    "coalesce": ((NUMBER, STRING, BOOL, DATETIME, LIST), (NUMBER, STRING, BOOL, DATETIME, LIST)),
    "round": ((NUMBER,),),
}
_SYMBOLS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Mod: "%",
}
_CONSTANT_NAMES = {"true": True, "false": False, "null": None}


# -- the compiler ------------------------------------------------------------------------


class _Compiler:
    def __init__(self, source: str, scope: Mapping[str, FieldType]) -> None:
        self.source = source
        self.scope = scope
        self.paths: list[str] = []
        #: ``days_since(x)`` / ``hours_since(x)`` calls compiled so far, by ``id()`` of their
        #: evaluator: ``x``'s evaluator, the unit in seconds and the call's evaluator itself
        #: (held, so that its id stays its own; see :func:`_compare_since`).
        self.since: dict[int, tuple[Evaluator, int, Evaluator]] = {}

    def fail(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionError:
        return ExpressionError(message, getattr(node, "col_offset", 0), hint)

    def compile(self, node: ast.AST) -> tuple[Evaluator, FieldType]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(
                node,
                f"{type(node).__name__} is not allowed in a rule expression",
                "use comparisons, and/or/not, arithmetic, lists, and the documented functions",
            )
        result: tuple[Evaluator, FieldType] = method(node)
        return result

    def _Constant(self, node: ast.Constant) -> tuple[Evaluator, FieldType]:
        value: Any = node.value
        if isinstance(value, float):
            value = Decimal(repr(value))
        if isinstance(value, bool):
            kind = BOOL
        elif isinstance(value, int | Decimal):
            kind = NUMBER
        elif isinstance(value, str):
            kind = STRING
        elif value is None:
            kind = ANY
        else:
            raise self.fail(node, f"literal {value!r} is not supported")
        return (lambda _c: value), FieldType(kind)

    def _List(self, node: ast.List | ast.Tuple) -> tuple[Evaluator, FieldType]:
        items = [self.compile(element) for element in node.elts]
        if all(isinstance(element, ast.Constant) for element in node.elts):
            frozen = frozenset(evaluate(_NO_CONTEXT) for evaluate, _ in items)
            kinds = {kind.kind for _, kind in items}
            return (lambda _c: frozen), FieldType(
                LIST, item=FieldType(kinds.pop() if len(kinds) == 1 else ANY)
            )
        evaluators = [evaluate for evaluate, _ in items]
        return (lambda c: [evaluate(c) for evaluate in evaluators]), FieldType(LIST)

    _Tuple = _List

    def _Name(self, node: ast.Name) -> tuple[Evaluator, FieldType]:
        if node.id in _CONSTANT_NAMES:
            constant = _CONSTANT_NAMES[node.id]
            kind = ANY if constant is None else BOOL
            return (lambda _c: constant), FieldType(kind)
        if node.id == "now":
            self.paths.append("now")
            return (lambda c: c.now), FieldType(DATETIME)
        if node.id not in self.scope:
            raise self.fail(
                node, f"unknown name {node.id!r}", _suggest(node.id, [*self.scope, "now"])
            )
        name = node.id
        self.paths.append(name)
        return (lambda c: c.roots[name]), self.scope[name]

    def _Attribute(self, node: ast.Attribute) -> tuple[Evaluator, FieldType]:
        parent, parent_type = self.compile(node.value)
        child_type = parent_type.child(node.attr)
        if child_type is None:
            path = ast.unparse(node.value)
            known = list(parent_type.fields or {})
            raise self.fail(
                node,
                f"{path!r} has no field {node.attr!r}",
                _suggest(node.attr, known) or f"known fields: {', '.join(sorted(known))}",
            )
        if self.paths and self.paths[-1] == ast.unparse(node.value):
            self.paths[-1] = ast.unparse(node)
        name = node.attr
        if self._is_root(node.value):  # event.screen: one closure, not two (runs per event)
            root = node.value.id  # type: ignore[attr-defined]  # _is_root: an ast.Name
            if parent_type.open_keys or parent_type.by_key:
                return (lambda c: None if (p := c.roots[root]) is None else p.get(name)), child_type
            return (lambda c: getattr(c.roots[root], name, None)), child_type
        if parent_type.open_keys or parent_type.by_key:  # a map (event_counts.app_click)
            return (lambda c: None if (p := parent(c)) is None else p.get(name)), child_type
        # a record: attribute access, and getattr(None, name, None) is None — null-safe for free
        return (lambda c: getattr(parent(c), name, None)), child_type

    def _is_root(self, node: ast.AST) -> bool:
        """A name that :meth:`_Name` compiles to ``c.roots[name]``."""
        return (
            isinstance(node, ast.Name)
            and node.id not in _CONSTANT_NAMES
            and node.id != "now"
            and node.id in self.scope
        )

    def _Compare(self, node: ast.Compare) -> tuple[Evaluator, FieldType]:
        left, left_type = self.compile(node.left)
        steps: list[tuple[Callable[[Any, Any], bool], Evaluator]] = []
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right, right_type = self.compile(comparator)
            self._check_comparison(node, op, left_type, right_type, comparator)
            steps.append((_COMPARE[type(op)], right))
            left_type = right_type

        if len(steps) == 1:
            ((compare, right),) = steps
            if _is_constant(node.comparators[0]):
                value = right(_NO_CONTEXT)
                since = self.since.get(id(left))
                if since is not None and since[2] is left:
                    fast = _compare_since(node.ops[0], since[0], since[1], value)
                    if fast is not None:
                        return fast, FieldType(BOOL)
                return _compare_constant(node.ops[0], left, value), FieldType(BOOL)
            return (lambda c: compare(left(c), right(c))), FieldType(BOOL)

        def chained(c: Context) -> bool:
            current = left(c)
            for compare, right in steps:
                following = right(c)
                if not compare(current, following):
                    return False
                current = following
            return True

        return chained, FieldType(BOOL)

    def _check_comparison(
        self,
        node: ast.Compare,
        op: ast.cmpop,
        left: FieldType,
        right: FieldType,
        right_node: ast.AST,
    ) -> None:
        if isinstance(op, ast.In | ast.NotIn):
            if right.kind not in (LIST, STRING, ANY):
                raise self.fail(node, f"'in' needs a list or text on its right, not a {right.kind}")
            if right.kind == STRING and left.kind not in (STRING, ANY):
                raise self.fail(node, f"looks for a {left.kind} in text")
            element = right.item
            if right.kind == LIST and element and _clash(left.kind, element.kind):
                raise self.fail(
                    node, f"checks whether a {left.kind} is in a list of {element.kind}s"
                )
            if left.values and isinstance(right_node, ast.List | ast.Tuple):
                for element_node in right_node.elts:
                    self._check_closed_value(element_node, left)
            return
        if _clash(left.kind, right.kind):
            raise self.fail(
                node,
                f"compares a {left.kind} with a {right.kind}; this can never be true",
                "quote strings, leave numbers unquoted",
            )
        if isinstance(op, ast.Eq | ast.NotEq) and left.values:
            self._check_closed_value(right_node, left)

    def _check_closed_value(self, node: ast.AST, field: FieldType) -> None:
        assert field.values is not None
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value not in field.values
        ):
            raise self.fail(
                node,
                f"{node.value!r} is not a possible value; this can never be true",
                _suggest(node.value, sorted(field.values)) or f"one of {sorted(field.values)}",
            )

    def _BoolOp(self, node: ast.BoolOp) -> tuple[Evaluator, FieldType]:
        parts = [self.compile(value)[0] for value in node.values]
        if isinstance(node.op, ast.And):
            return (lambda c: all(part(c) for part in parts)), FieldType(BOOL)
        return (lambda c: any(part(c) for part in parts)), FieldType(BOOL)

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Evaluator, FieldType]:
        operand, operand_type = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return (lambda c: not operand(c)), FieldType(BOOL)
        if isinstance(node.op, ast.USub):
            if operand_type.kind not in (NUMBER, ANY):
                raise self.fail(node, f"'-' needs a number, not a {operand_type.kind}")
            return (lambda c: None if (v := operand(c)) is None else -v), operand_type
        raise self.fail(node, "only 'not' and '-' are allowed as unary operators")

    def _BinOp(self, node: ast.BinOp) -> tuple[Evaluator, FieldType]:
        if type(node.op) not in _ARITHMETIC:
            raise self.fail(
                node, f"operator {type(node.op).__name__} is not allowed", "use + - * / %"
            )
        left, left_type = self.compile(node.left)
        right, right_type = self.compile(node.right)
        result = self._arithmetic_type(node, left_type.kind, right_type.kind)
        if isinstance(node.op, ast.Div | ast.Mod) and _is_zero(node.right):
            raise self.fail(node.right, "division by zero", "divide by a number other than 0")
        apply = _ARITHMETIC[type(node.op)]
        return (lambda c: apply(left(c), right(c))), FieldType(result)

    def _arithmetic_type(self, node: ast.BinOp, left: str, right: str) -> str:
        """The kind ``left <op> right`` gives, or an error when it could only raise.

        Numbers take ``+ - * / %``; text takes ``+`` with text (joining). Whatever the two
        sides, a mix that Python would refuse at run time is refused here, where the
        mistake has a line and column: at run time it would suppress the rule on every
        event (``rule_error``).
        """
        symbol = _SYMBOLS[type(node.op)]
        for side in (left, right):
            if side not in (NUMBER, STRING, ANY):
                raise self.fail(node, f"arithmetic on a {side}", "use + - * / % on numbers")
        if STRING in (left, right):
            if not isinstance(node.op, ast.Add):
                raise self.fail(node, f"'{symbol}' on text", "text takes only '+', to join")
            if NUMBER in (left, right):
                raise self.fail(
                    node,
                    "adds a number and text",
                    'quote the number to join text ("3"), or compare numbers without quotes',
                )
            return STRING
        if left == right == ANY:
            return ANY
        return NUMBER

    def _Call(self, node: ast.Call) -> tuple[Evaluator, FieldType]:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = ast.unparse(node.func)
            raise self.fail(node, f"unknown function {name!r}", _suggest(name, list(_FUNCTIONS)))
        if node.keywords:
            raise self.fail(node, "functions take positional arguments only")
        arity, kind, implementation = _FUNCTIONS[node.func.id]
        if len(node.args) != arity:
            raise self.fail(
                node, f"{node.func.id}() takes {arity} argument(s), got {len(node.args)}"
            )
        compiled = [self.compile(argument) for argument in node.args]
        for argument, (_, argument_type), accepted in zip(
            node.args, compiled, _ARGUMENT_KINDS[node.func.id], strict=True
        ):
            if argument_type.kind not in (*accepted, ANY):
                raise self.fail(
                    argument,
                    f"{node.func.id}() takes {' or '.join(accepted)}, not a {argument_type.kind}",
                )
        if node.func.id == "contains":
            container, item = (argument_type.kind for _, argument_type in compiled)
            if container == STRING and item not in (STRING, ANY):
                raise self.fail(node.args[1], f"contains() looks for text in text, not a {item}")
        arguments = [evaluate for evaluate, _ in compiled]
        if node.func.id == "coalesce":
            first, second = (argument_type.kind for _, argument_type in compiled)
            if _clash(first, second):
                raise self.fail(node, f"coalesce() of a {first} and a {second}")
            kind = second if first == ANY else first
        if arity == 1:
            (only,) = arguments

            def call(c: Context) -> Any:
                return implementation(c, only(c))

            if node.func.id in _SINCE_UNITS:
                self.since[id(call)] = (only, _SINCE_UNITS[node.func.id], call)
            return call, FieldType(kind)
        return (lambda c: implementation(c, *(a(c) for a in arguments))), FieldType(kind)


def _is_zero(node: ast.AST) -> bool:
    """A literal 0 (``x / 0``): refused at load rather than raising on every event."""
    return (
        isinstance(node, ast.Constant)
        and not isinstance(node.value, bool)
        and isinstance(node.value, int | float)
        and node.value == 0
    )


def _is_constant(node: ast.AST) -> bool:
    """A literal, or a list of literals: compiled to a closure returning one fixed value."""
    if isinstance(node, ast.List | ast.Tuple):
        return all(isinstance(element, ast.Constant) for element in node.elts)
    return isinstance(node, ast.Constant)


_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _compare_constant(op: ast.cmpop, left: Evaluator, value: Any) -> Evaluator:
    """``left <op> value`` for a literal ``value``, as ``_COMPARE`` does it, in one closure.

    Most conditions compare a field with a literal and every event evaluates several, so
    the null checks of ``_ordered`` and ``_contains`` are inlined here; for a ``None``
    literal the general form is kept.
    """
    kind = type(op)
    compare = _COMPARE[kind]
    if value is None:
        return lambda c: compare(left(c), value)
    if kind is ast.Eq:
        return lambda c: left(c) == value
    if kind is ast.NotEq:
        return lambda c: left(c) != value
    if kind in _ORDER:
        order = _ORDER[kind]
        return lambda c: False if (item := left(c)) is None else order(item, value)
    if kind is ast.In:
        return lambda c: False if (item := left(c)) is None else bool(item in value)
    if kind is ast.NotIn:
        return lambda c: True if (item := left(c)) is None else not bool(item in value)
    return lambda c: compare(left(c), value)


#: The functions :func:`_compare_since` compiles, with their unit in seconds.
_SINCE_UNITS = {"days_since": 86_400, "hours_since": 3_600}
#: Up to this many units, comparing the time span itself decides exactly as the Decimal does.
_SINCE_EXACT_UP_TO = 10_000


def _compare_since(op: ast.cmpop, moment: Evaluator, unit: int, value: Any) -> Evaluator | None:
    """``days_since(x) <op> N`` as ``now - x <op> N days``, without the Decimal arithmetic.

    ``days_since`` is ``Decimal(span.total_seconds()) / 86400``, rounded to 28 digits, and
    the reactivation rule compares it with a literal on every click. For an integer ``N`` of
    at most :data:`_SINCE_EXACT_UP_TO` units the comparison of that Decimal with ``N`` has
    the same result as comparing the span (exact microseconds) with ``N`` units:

    * ``N * unit`` is a whole number of seconds below 2**30, exact as a float; the float
      seconds either equal it (and the quotient is exactly ``N``) or differ from it by at
      least one ulp (>= 2**-23 s at that size, less only where smaller spans have finer
      ulps), which 28 significant digits resolve many times over: the Decimal compares
      with ``N`` as the float does with ``N * unit``;
    * the float is the span's exact microseconds divided by a million, correctly rounded,
      and below 2**30 s half an ulp (< 6e-8 s) is far less than a microsecond: a span a
      microsecond off ``N * unit`` never rounds onto it, so the float compares as the
      span itself does.

    ``None`` for anything else (other operators, fractions, larger numbers): the general
    form is used. A missing moment is ``null``, false as in the general form; anything
    that is not a datetime raises the same error from the same subtraction.
    """
    kind = type(op)
    if kind not in _ORDER or type(value) is not int or abs(value) > _SINCE_EXACT_UP_TO:
        return None
    order = _ORDER[kind]
    span = timedelta(seconds=value * unit)

    def compare(c: Context) -> bool:
        then = moment(c)
        return False if then is None else order(c.now - then, span)

    return compare


class _NoContext:
    roots: Mapping[str, Any] = {}
    now = datetime.min


_NO_CONTEXT = _NoContext()


def _clash(left: str, right: str) -> bool:
    """Two static kinds that can never compare equal or be ordered."""
    if ANY in (left, right) or left == right:
        return False
    return {left, right} != {NUMBER, BOOL}


def _suggest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def compile_expression(source: str, scope: Mapping[str, FieldType]) -> CompiledExpression:
    """Compile one expression against the names and fields in ``scope``.

    Raises:
        ExpressionError: with a 0-based column into ``source`` and, where possible, a hint.

    """
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; the limit is {MAX_EXPRESSION_LENGTH}",
            0,
            "split it into several conditions or declare a feature",
        )
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        if not isinstance(exc, SyntaxError):
            raise ExpressionError("expression is nested too deeply", 0, "split it") from exc
        raise ExpressionError(
            f"syntax error: {exc.msg}", max((exc.offset or 1) - 1, 0), "check quotes and brackets"
        ) from exc
    compiler = _Compiler(source, scope)
    try:
        evaluate, result_type = compiler.compile(tree.body)
    except RecursionError as exc:
        raise ExpressionError(
            "expression is nested too deeply", 0, "split it into conditions"
        ) from exc
    return CompiledExpression(
        source,
        evaluate,
        tuple(dict.fromkeys(compiler.paths)),
        result_type,
        _index_hint(tree.body),
    )


def leading_index_hint(source: str) -> tuple[str, frozenset[str]] | None:
    """The index hint of the part of ``source`` that is evaluated first, if it has one.

    ``event.f == "x"``, ``event.f in ["x", "y"]``, or either as the first operand of an
    ``and``: when ``event.f`` is a text outside the values, the expression is false without
    evaluating anything after that first part, so nothing in it could have raised. A hint
    from a later operand of an ``and`` does not say that (an earlier one may raise), which is
    why feature feeds, whose failures are recorded, index on this one only.
    """
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        return None
    while isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        node = node.values[0]
    return _index_hint(node)


def _index_hint(node: ast.AST) -> tuple[str, frozenset[str]] | None:
    """``event.f == "x"`` or ``event.f in ["x", "y"]``, alone or as one part of an ``and``."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return next((h for h in map(_index_hint, node.values) if h is not None), None)
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if not (
        isinstance(left, ast.Attribute)
        and isinstance(left.value, ast.Name)
        and left.value.id == "event"
    ):
        return None
    if isinstance(op, ast.Eq):
        candidates = [right]
    elif isinstance(op, ast.In) and isinstance(right, ast.List | ast.Tuple):
        candidates = list(right.elts)
    else:
        return None
    values = [
        c.value for c in candidates if isinstance(c, ast.Constant) and isinstance(c.value, str)
    ]
    if len(values) != len(candidates):
        return None
    return left.attr, frozenset(values)
