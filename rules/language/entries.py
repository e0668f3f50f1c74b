"""One rule file split into its entries (features, rules, policy), each checked in place.

An entry keeps the YAML node it came from, so whatever is wrong with it (a key pydantic
refuses, an expression that does not compile) is reported at its line and column, with the
closest allowed key as a hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from rules.errors import Problem
from rules.language.expression_types import (
    ANY,
    BOOL,
    CompiledExpression,
    ExpressionError,
    FieldType,
)
from rules.language.expressions import compile_expression
from rules.language.spec import FeatureSpec, RuleSpec
from rules.language.yaml_reader import plain_yaml, read_document
from rules.policy import PolicySpec

_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")  # a key; pydantic's union tags look like "literal['x']"
_TOP_LEVEL_KEYS = ("features", "rules", "policy")


def _quote_width(value: Any) -> int:
    return 1 if isinstance(value, DoubleQuotedScalarString | SingleQuotedScalarString) else 0


def _locate(node: Any, loc: tuple[Any, ...], fallback: tuple[int, int]) -> tuple[int, int]:
    """0-based (line, column) of the deepest element of ``loc`` that exists in ``node``."""
    position = fallback
    for index, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            last = index == len(loc) - 1
            position = (
                node.lc.value(part) if not last or node[part] is not None else node.lc.key(part)
            )
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            position = node.lc.item(part)
            node = node[part]
        else:
            break
    return position


@dataclass
class Entry:
    """A rule or feature mapping awaiting compilation, with where it came from."""

    file: FileLoader
    node: CommentedMap
    line: int
    column: int

    def locate(self, loc: tuple[Any, ...]) -> tuple[int, int]:
        """0-based (line, column) of ``loc`` inside this entry, or of the entry itself."""
        return _locate(self.node, loc, (self.line, self.column))

    def validate(self, model: type[BaseModel], label: str) -> Any:
        """The entry as ``model``, or ``None`` with each error reported where it was written."""
        try:
            return model.model_validate(plain_yaml(self.node))
        except ValidationError as exc:
            # A value that fits none of a union's members gives one error per member, each
            # with the member's tag in its location: merge them into one problem.
            merged: dict[tuple[Any, ...], dict[str, Any]] = {}
            for details in exc.errors(include_url=False):
                error: dict[str, Any] = dict(details)
                # The key of an unknown-key error is whatever was typed ("TTL", "h[oldout"):
                # kept even when it does not look like a field name.
                last = len(error["loc"]) - 1 if error["type"] == "extra_forbidden" else -1
                loc = tuple(
                    p
                    for i, p in enumerate(error["loc"])
                    if isinstance(p, int) or _FIELD.match(p) or i == last
                )
                if loc in merged:
                    merged[loc]["msg"] += f", or {error['msg'][0].lower()}{error['msg'][1:]}"
                else:
                    merged[loc] = {**error, "loc": loc}
            for error in merged.values():
                self._report_validation(error, label)
            return None
        except (LookupError, TypeError, ArithmeticError) as exc:
            # A validator raised what pydantic does not wrap (ZoneInfo's KeyError for an
            # unknown time zone): still one problem, not a traceback.
            reason = exc.args[0] if exc.args else type(exc).__name__
            self.file.problem(self.line, self.column, f"{label}: {reason}")
            return None

    def _report_validation(self, error: Any, label: str) -> None:
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden" and loc:
            line, column = self.locate(loc[:-1])
            container = _raw_at(self.node, loc[:-1])
            # plain_yaml made every key text: find the key as written (None, 1, "TTL").
            keys = [k for k in container if str(k) == str(loc[-1])] if container else []
            if isinstance(container, CommentedMap) and keys:
                line, column = container.lc.key(keys[0])
            fields = _model_fields_at(loc[:-1], self)
            close = difflib.get_close_matches(str(loc[-1]).lower(), fields, n=1)
            self.file.problem(
                line,
                column,
                f"{label}: unknown key {loc[-1]!r}",
                f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(fields)}",
            )
            return
        line, column = self.locate(loc)
        message = error["msg"].removeprefix("Value error, ")
        self.file.problem(
            line, column, f"{label}, {where}: {message}" if where else f"{label}: {message}"
        )

    def expression(
        self,
        loc: tuple[Any, ...],
        text: str,
        scope: Mapping[str, FieldType],
        label: str,
    ) -> CompiledExpression | None:
        """``text`` (at ``loc``) compiled, or ``None`` with the problem at its column."""
        try:
            return compile_expression(text, scope)
        except ExpressionError as exc:
            line, column = self.locate(loc)
            raw = _raw_at(self.node, loc)
            self.file.problem(
                line,
                column + _quote_width(raw) + exc.column,
                f"{label}, {text!r}: {exc.message}",
                exc.hint,
            )
            return None

    def conditions(
        self,
        loc: tuple[Any, ...],
        texts: list[str],
        scope: Mapping[str, FieldType],
        label: str,
    ) -> tuple[CompiledExpression, ...] | None:
        """Every condition of ``texts`` compiled, or ``None`` if any fails (each reported)."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return None  # not a list of text: validation reports it, with its position
        raw = _raw_at(self.node, loc)
        compiled = [
            self._condition(
                loc + ((i,) if isinstance(raw, CommentedSeq) else ()), text, scope, label
            )
            for i, text in enumerate(texts)
        ]
        if any(c is None for c in compiled):
            return None
        return tuple(c for c in compiled if c is not None)

    def _condition(
        self, loc: tuple[Any, ...], text: str, scope: Mapping[str, FieldType], label: str
    ) -> CompiledExpression | None:
        """A condition: an expression that is true or false.

        ``event.step`` alone would hold for any step but 0 — almost surely a comparison
        left unfinished, so it is refused with the type it has.
        """
        compiled = self.expression(loc, text, scope, label)
        if compiled is None or compiled.result_type.kind in (BOOL, ANY):
            return compiled
        line, column = self.locate(loc)
        self.file.problem(
            line,
            column + _quote_width(_raw_at(self.node, loc)),
            f"{label}, {text!r}: a condition is true or false, this is a "
            f"{compiled.result_type.kind}",
            "compare it, e.g. 'event.step >= 3'",
        )
        return None


class FileLoader:
    """Parses one file and collects its problems."""

    def __init__(self, display: str, text: str) -> None:
        self.display = display
        self.text = text
        self.problems: list[Problem] = []

    def problem(self, line: int, column: int, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.display, line + 1, column + 1, message, hint))

    def parse(self) -> tuple[list[Entry], list[Entry], Entry | None]:
        """The feature and rule mappings and the policy of the file (empty if unreadable)."""
        document, problem = read_document(self.display, self.text)
        if problem is not None:
            self.problems.append(problem)
            return [], [], None
        if not isinstance(document, CommentedMap) or not any(
            k in document for k in _TOP_LEVEL_KEYS
        ):
            self.problem(
                0,
                0,
                "a rule file must be a mapping with 'rules:', 'features:' or 'policy:'",
                "start the file with 'rules:'",
            )
            return [], [], None
        for key in document:
            if key not in _TOP_LEVEL_KEYS:
                line, column = document.lc.key(key)
                self.problem(
                    line,
                    column,
                    f"unknown top-level key {key!r}",
                    "only 'features:', 'rules:' and 'policy:'",
                )
        policy = None
        if "policy" in document:
            node = document["policy"]
            line, column = document.lc.value("policy")
            if isinstance(node, CommentedMap):
                policy = Entry(self, node, line, column)
            else:
                self.problem(line, column, "'policy:' must be a mapping (caps, quiet_hours)")
        return self._entries(document, "features"), self._entries(document, "rules"), policy

    def _entries(self, document: CommentedMap, key: str) -> list[Entry]:
        section = document.get(key)
        if section is None:
            return []
        if not isinstance(section, CommentedSeq):
            line, column = document.lc.value(key)
            self.problem(line, column, f"'{key}:' must be a list")
            return []
        entries = []
        for index, node in enumerate(section):
            line, column = section.lc.item(index)
            if isinstance(node, CommentedMap):
                entries.append(Entry(self, node, line, column))
            else:
                self.problem(line, column, f"each entry of '{key}:' must be a mapping")
        return entries


def _raw_at(node: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if (isinstance(node, CommentedMap) and part in node) or (
            isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return None
    return node


def _model_fields_at(loc: tuple[Any, ...], entry: Entry) -> list[str]:
    """The allowed keys at ``loc`` inside a rule or feature, for "did you mean"."""
    model: Any = (
        RuleSpec if "id" in entry.node else FeatureSpec if "aggregate" in entry.node else PolicySpec
    )
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields.get(part)
        inner = getattr(annotation, "annotation", None)
        candidates = [inner, *getattr(inner, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)
