"""Load a directory of YAML rule files into a compiled :class:`Ruleset`, or refuse it.

Loading never stops at the first mistake: marketing ops get every problem at once, each
with file, line and column (1-based, as editors show them) and a hint. A ruleset with any
problem is refused whole, so the ruleset already running stays in force.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from rules.expressions import (
    CompiledExpression,
    Context,
    ExpressionError,
    FieldType,
    compile_expression,
)
from rules.params import bundle, compile_param
from rules.ruleset import CompiledRule, Ruleset
from rules.scope import rule_scope
from rules.spec import RuleSpec
from schemas.errors import Problem, RuleFileError
from schemas.events import EVENT_MODELS

RULE_FILE_SUFFIXES = (".yaml", ".yml")


def rule_files(path: Path) -> list[Path]:
    """Rule files under ``path`` (or ``path`` itself), sorted; ``tests`` folders are skipped."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix in RULE_FILE_SUFFIXES
        and p.is_file()
        and "tests" not in p.relative_to(path).parts
    )


def _plain(node: Any) -> Any:
    """Ruamel's commented containers to plain Python, for pydantic."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _quote_width(value: Any) -> int:
    return 1 if isinstance(value, DoubleQuotedScalarString | SingleQuotedScalarString) else 0


class _FileLoader:
    """Collects problems for one file while compiling its rules."""

    def __init__(self, display: str, text: str) -> None:
        self.display = display
        self.text = text
        self.problems: list[Problem] = []

    def problem(self, line: int, column: int, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.display, line + 1, column + 1, message, hint))

    def load(self) -> list[CompiledRule]:
        try:
            yaml = YAML(typ="rt")
            yaml.preserve_quotes = True
            document = yaml.load(self.text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            self.problem(
                mark.line if mark else 0, mark.column if mark else 0, f"YAML: {exc.problem}"
            )
            return []
        if not isinstance(document, CommentedMap) or not isinstance(
            document.get("rules"), CommentedSeq
        ):
            self.problem(
                0,
                0,
                "a rule file must be a mapping with a 'rules:' list",
                "start the file with 'rules:'",
            )
            return []
        for key in document:
            if key != "rules":
                line, column = document.lc.key(key)
                self.problem(
                    line, column, f"unknown top-level key {key!r}", "only 'rules:' is allowed"
                )
        rules_node: CommentedSeq = document["rules"]
        compiled = []
        for index, node in enumerate(rules_node):
            line, column = rules_node.lc.item(index)
            if not isinstance(node, CommentedMap):
                self.problem(line, column, "each rule must be a mapping (id, version, event, ...)")
                continue
            rule = self._compile_rule(node, line, column)
            if rule is not None:
                compiled.append(rule)
        return compiled

    def _compile_rule(self, node: CommentedMap, line: int, column: int) -> CompiledRule | None:
        spec: RuleSpec | None = None
        try:
            spec = RuleSpec.model_validate(_plain(node))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self._locate_validation_error(node, error, line, column)
        event_type = node.get("event")
        if event_type not in EVENT_MODELS:
            return None  # already reported; without it there is no scope to check against
        # Expressions are checked even when other keys are wrong: report everything at once.
        rule_id = str(node.get("id", "?"))
        scope = rule_scope(str(event_type))
        conditions = list(self._compile_conditions(node, rule_id, scope))
        renderers = dict(self._compile_params(node, rule_id, scope))
        if spec is None or len(conditions) != len(spec.when) or len(renderers) != len(spec.params):
            return None
        return CompiledRule(
            spec=spec,
            conditions=tuple(conditions),
            render_params=bundle(renderers),
            source=f"{self.display}:{line + 1}",
        )

    def _compile_conditions(
        self, node: CommentedMap, rule_id: str, scope: Mapping[str, FieldType]
    ) -> Iterator[CompiledExpression]:
        when = node.get("when")
        items = list(enumerate(when)) if isinstance(when, CommentedSeq) else [(None, when)]
        for index, text in items:
            if not isinstance(text, str):
                continue  # a type error the spec validation already reported
            if index is None:
                line, column = node.lc.value("when")
            else:
                line, column = when.lc.item(index)
            try:
                yield compile_expression(text, scope)
            except ExpressionError as exc:
                self.problem(
                    line,
                    column + _quote_width(text) + exc.column,
                    f"rule {rule_id!r}, condition {text!r}: {exc.message}",
                    exc.hint,
                )

    def _compile_params(
        self, node: CommentedMap, rule_id: str, scope: Mapping[str, FieldType]
    ) -> Iterator[tuple[str, Callable[[Context], Any]]]:
        params = node.get("params")
        if not isinstance(params, CommentedMap):
            return
        for name, value in params.items():
            try:
                yield str(name), compile_param(_plain(value), scope)
            except ExpressionError as exc:
                value_line, value_column = params.lc.value(name)
                self.problem(
                    value_line,
                    value_column,
                    f"rule {rule_id!r}, param {name!r}: {exc.message}",
                    exc.hint,
                )

    def _locate_validation_error(
        self, node: CommentedMap, error: Any, line: int, column: int
    ) -> None:
        loc = error["loc"]
        key = loc[0] if loc else None
        rule_id = node.get("id", "?")
        where = ".".join(str(p) for p in loc) or "rule"
        hint = None
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(key), list(RuleSpec.model_fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            message = f"rule {rule_id!r}: unknown key {key!r}"
        else:
            message = f"rule {rule_id!r}, {where}: {error['msg']}"
        if isinstance(key, str) and key in node:
            line, column = (
                node.lc.value(key) if error["type"] != "extra_forbidden" else node.lc.key(key)
            )
            child = node[key]
            if len(loc) > 1 and isinstance(child, CommentedSeq) and isinstance(loc[1], int):
                line, column = child.lc.item(loc[1])
        self.problem(line, column, message, hint)


def read_sources(path: Path) -> dict[str, str]:
    """The text of every rule file under ``path``, keyed by its path as given.

    Raises:
        RuleFileError: the path does not exist, holds no rule file, or a file is not UTF-8.

    """
    path = Path(path)
    if not path.exists():
        raise RuleFileError([Problem(str(path), 1, 1, "no such file or directory")])
    files = rule_files(path)
    if not files:
        raise RuleFileError([Problem(str(path), 1, 1, "no rule files (*.yaml, *.yml) found")])
    sources: dict[str, str] = {}
    for file in files:
        try:
            sources[str(file)] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RuleFileError(
                [Problem(str(file), 1, 1, f"not UTF-8 text: {exc.reason}")]
            ) from exc
    return sources


def load_ruleset(path: Path) -> Ruleset:
    """Load and compile every rule file under ``path``.

    Raises:
        RuleFileError: listing every problem found; nothing is partially loaded.

    """
    return compile_sources(read_sources(path))


def compile_sources(sources: Mapping[str, str]) -> Ruleset:
    """Compile rule files given as ``{name: YAML text}`` (a directory, or a deployed bundle).

    Raises:
        RuleFileError: listing every problem found; nothing is partially loaded.

    """
    problems: list[Problem] = []
    rules: list[CompiledRule] = []
    first_seen: dict[str, str] = {}
    for display, text in sources.items():
        loader = _FileLoader(display, text)
        for rule in loader.load():
            if rule.id in first_seen:
                where = rule.source.rsplit(":", 1)
                problems.append(
                    Problem(
                        where[0],
                        int(where[1]),
                        1,
                        f"duplicate rule id {rule.id!r}",
                        f"first defined at {first_seen[rule.id]}; rule ids must be unique",
                    )
                )
                continue
            first_seen[rule.id] = rule.source
            rules.append(rule)
        problems.extend(loader.problems)
    if problems:
        raise RuleFileError(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
    return Ruleset.build(rules)
