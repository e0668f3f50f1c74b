"""Action parameters rendered per decision: literals, or ``{{ expression }}`` placeholders.

A value that is exactly one placeholder keeps the expression's type (a number stays a
number for the channel system); anything else holding placeholders (``"{{ profile.tier }} /
{{ event.screen }}"``) is text, each placeholder interpolated.

Rendered params are bounded (:data:`MAX_PARAM_BYTES` per value, :data:`MAX_PARAMS_BYTES` in
all): their values come from event and profile fields at run time, so a rule that passed
validation can still meet a 10 MB ``event.screen``. Rendering raises
:class:`ParamsTooLargeError` then, a ``ValueError`` the engine records as a suppressed
decision (``rule_error``) instead of shipping a huge action to the channel system.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rules.errors import RuleError
from rules.language.expression_types import CompiledExpression, Context, FieldType
from rules.language.expressions import compile_expression

#: One rendered value, in UTF-8 bytes (JSON for lists and mappings): a push or SMS text is a
#: few hundred characters; a kilobyte leaves room for links and ids and nothing more.
MAX_PARAM_BYTES = 1024

#: All of a rule's params (names and values): an action is one Kafka message among
#: millions, and the channel system's templates take a handful of short fields.
MAX_PARAMS_BYTES = 4096

Renderer = Callable[[Context], dict[str, Any]]


class ParamsTooLargeError(RuleError, ValueError):
    """A rule's params rendered larger than the limits; the message never holds the value.

    A ``ValueError`` so the engine's "a rule that raises is suppressed, never fatal" path
    catches it with the other rendering errors; a ``RuleError`` because the rule (not the
    event) decides how much data it copies into an action.
    """


def size_of(value: Any) -> int:
    """The size of a parameter value in UTF-8 bytes, as it travels in an action (JSON)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="replace"))
    if value is None or isinstance(value, bool | int | float | Decimal):
        return len(str(value))
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "replace"))


def literal_size(value: Any) -> int:
    """The bytes of ``value`` that do not depend on the event: all but its placeholders."""
    if isinstance(value, str) and "{{" in value:
        text, position = [], 0
        for start, end, _ in _placeholders(value):
            text.append(value[position:start])
            position = end
        text.append(value[position:])
        return size_of("".join(text))
    return size_of(value)


def _placeholders(value: str) -> list[tuple[int, int, str]]:
    """``(start, end, expression)`` of each ``{{ ... }}`` in ``value``, left to right.

    A scan with ``str.find``, linear in the text: a regular expression looking for the
    closing braces from every ``{{`` is quadratic on ``"{{ {{ {{ ..."``, and the obvious
    ``{{(.+?)}}`` with ``fullmatch`` read ``"{{ a }} / {{ b }}"`` as the one expression
    ``a }} / {{ b``.
    """
    found = []
    position = 0
    while (start := value.find("{{", position)) != -1:
        end = value.find("}}", start + 2)
        if end == -1:
            break
        found.append((start, end + 2, value[start + 2 : end].strip()))
        position = end + 2
    return found


def compile_param(value: Any, scope: Mapping[str, FieldType]) -> Callable[[Context], Any]:
    """Compile one parameter value; raises ``ExpressionError`` for a bad placeholder."""
    if not isinstance(value, str) or "{{" not in value:
        return lambda _c: value
    placeholders = _placeholders(value)
    stripped = value.strip()
    if len(placeholders) == 1 and value[placeholders[0][0] : placeholders[0][1]] == stripped:
        return compile_expression(placeholders[0][2], scope).evaluate
    pieces: list[str | CompiledExpression] = []
    position = 0
    for start, end, expression in placeholders:
        pieces.append(value[position:start])
        pieces.append(compile_expression(expression, scope))
        position = end
    pieces.append(value[position:])

    def render(context: Context) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                result = piece.evaluate(context)
                out.append("" if result is None else str(result))
        return "".join(out)

    return render


def bundle(compiled: Mapping[str, Callable[[Context], Any]]) -> Renderer:
    """Combine compiled parameters into one renderer of the whole ``params`` dict.

    The renderer raises :class:`ParamsTooLargeError` when a value or the whole exceeds the
    limits.
    """
    items = tuple(compiled.items())

    def render(context: Context) -> dict[str, Any]:
        params = {}
        total = 0
        for name, render_one in items:
            value = render_one(context)
            size = size_of(value)
            if size > MAX_PARAM_BYTES:
                raise ParamsTooLargeError(
                    f"param {name!r} rendered to {size} bytes; the limit is {MAX_PARAM_BYTES}"
                )
            total += len(name) + size
            if total > MAX_PARAMS_BYTES:
                raise ParamsTooLargeError(
                    f"params rendered to more than {MAX_PARAMS_BYTES} bytes (at {name!r})"
                )
            params[name] = value
        return params

    return render
