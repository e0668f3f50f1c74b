"""The static side of the expression language: what an expression sees, types, results.

A :class:`FieldType` is known for every path at load time (``rules.language.scope`` builds
them from the wire models), so a condition comparing a number with text is refused before
it can run. :class:`CompiledExpression` is what the compiler in
``rules.language.expressions`` returns and what the engine evaluates per event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas.errors import KairosError


class Context(Protocol):
    """What an expression can see; ``rules.engine`` provides the implementation."""

    @property
    def roots(self) -> Mapping[str, Any]: ...

    @property
    def now(self) -> datetime: ...


Evaluator = Callable[[Context], Any]

# -- types known at compile time -------------------------------------------------------

NUMBER, STRING, BOOL, DATETIME, LIST, ANY = "number", "string", "bool", "datetime", "list", "any"


@dataclass(frozen=True)
class FieldType:
    """The static type of a path; ``fields`` for records, ``values`` for closed string sets."""

    kind: str
    fields: Mapping[str, FieldType] | None = None
    values: frozenset[str] | None = None
    open_keys: bool = False  # a map: any key is allowed, all of type ``item``
    item: FieldType | None = None
    #: Read with ``get(name)`` like a map, though its fields are declared: a record kept
    #: as a mapping (``features``, a ``FeatureView``, whose ``get`` reads and caches).
    by_key: bool = False

    def child(self, name: str) -> FieldType | None:
        if self.open_keys:
            return self.item or FieldType(ANY)
        if self.fields is None:
            return None
        return self.fields.get(name)


class ExpressionError(KairosError):
    """A condition or parameter that cannot be compiled; ``column`` is 0-based in the text."""

    def __init__(self, message: str, column: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.hint = hint


@dataclass(frozen=True)
class CompiledExpression:
    """A compiled expression: call ``evaluate(context)``; ``paths`` are what it reads."""

    source: str
    evaluate: Evaluator
    paths: tuple[str, ...]
    result_type: FieldType
    #: ``(field, values)`` when the expression can only hold if ``event.<field>`` is one of
    #: ``values``; the ruleset indexes rules on it so most rules are never evaluated.
    index_hint: tuple[str, frozenset[str]] | None = None
