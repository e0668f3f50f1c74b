"""Action parameters rendered per decision: literals, or ``{{ expression }}`` placeholders.

A value that is exactly one placeholder keeps the expression's type (a number stays a
number for the channel system); placeholders inside longer text are interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from rules.expressions import CompiledExpression, Context, FieldType, compile_expression

_PLACEHOLDER = re.compile(r"\{\{\s*(.+?)\s*\}\}")

Renderer = Callable[[Context], dict[str, Any]]


def compile_param(value: Any, scope: Mapping[str, FieldType]) -> Callable[[Context], Any]:
    """Compile one parameter value; raises ``ExpressionError`` for a bad placeholder."""
    if not isinstance(value, str) or "{{" not in value:
        return lambda _c: value
    whole = _PLACEHOLDER.fullmatch(value.strip())
    if whole:
        expression = compile_expression(whole.group(1), scope)
        return expression.evaluate
    pieces: list[str | CompiledExpression] = []
    position = 0
    for match in _PLACEHOLDER.finditer(value):
        pieces.append(value[position : match.start()])
        pieces.append(compile_expression(match.group(1), scope))
        position = match.end()
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
    """Combine compiled parameters into one renderer of the whole ``params`` dict."""
    items = tuple(compiled.items())
    return lambda context: {name: render(context) for name, render in items}
