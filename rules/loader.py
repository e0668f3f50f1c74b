"""Load YAML rule files into a compiled :class:`Ruleset`, or refuse them with every problem.

Loading never stops at the first mistake: marketing ops get every problem at once, each
with file, line and column (1-based, as editors show them) and a hint. A ruleset with any
problem is refused whole, so the ruleset already running stays in force.

Two passes: features are compiled first (from every file: they are shared), then rules,
whose expressions are type-checked against the event, the profile, the state and the
declared features.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from rules.expressions import (
    STRING,
    CompiledExpression,
    Context,
    ExpressionError,
    FieldType,
    compile_expression,
)
from rules.features import CompiledFeature, default_bucket, signature
from rules.params import bundle, compile_param
from rules.policy import PolicySpec
from rules.ruleset import (
    CompiledAbsence,
    CompiledPattern,
    CompiledRule,
    CompiledSequence,
    Ruleset,
)
from rules.scope import rule_scope
from rules.spec import FeatureSpec, RuleSpec
from schemas.errors import Problem, RuleFileError
from schemas.events import EVENT_MODELS

RULE_FILE_SUFFIXES = (".yaml", ".yml")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")  # a key; pydantic's union tags look like "literal['x']"
_TOP_LEVEL_KEYS = ("features", "rules", "policy")


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


def plain_yaml(node: Any) -> Any:
    """Ruamel's commented containers to plain Python, for pydantic."""
    if isinstance(node, dict):
        return {str(k): plain_yaml(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain_yaml(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


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
class _Entry:
    """A rule or feature mapping awaiting compilation, with where it came from."""

    file: _FileLoader
    node: CommentedMap
    line: int
    column: int


class _FileLoader:
    """Parses one file and collects its problems."""

    def __init__(self, display: str, text: str) -> None:
        self.display = display
        self.text = text
        self.problems: list[Problem] = []

    def problem(self, line: int, column: int, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.display, line + 1, column + 1, message, hint))

    def parse(self) -> tuple[list[_Entry], list[_Entry], _Entry | None]:
        """The feature and rule mappings and the policy of the file (empty if unreadable)."""
        try:
            yaml = YAML(typ="rt")
            yaml.preserve_quotes = True
            document = yaml.load(self.text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            self.problem(
                mark.line if mark else 0, mark.column if mark else 0, f"YAML: {exc.problem}"
            )
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
                policy = _Entry(self, node, line, column)
            else:
                self.problem(line, column, "'policy:' must be a mapping (caps, quiet_hours)")
        return self._entries(document, "features"), self._entries(document, "rules"), policy

    def _entries(self, document: CommentedMap, key: str) -> list[_Entry]:
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
                entries.append(_Entry(self, node, line, column))
            else:
                self.problem(line, column, f"each entry of '{key}:' must be a mapping")
        return entries


class _Compiler:
    """Compiles entries, reporting problems on the file each entry came from."""

    def __init__(self) -> None:
        self.features: dict[str, CompiledFeature] = {}
        self.hidden: list[CompiledFeature] = []

    # -- helpers -------------------------------------------------------------------------

    def _validate(self, entry: _Entry, model: type[BaseModel], label: str) -> Any:
        try:
            return model.model_validate(plain_yaml(entry.node))
        except ValidationError as exc:
            # A value that fits none of a union's members gives one error per member, each
            # with the member's tag in its location: merge them into one problem.
            merged: dict[tuple[Any, ...], dict[str, Any]] = {}
            for details in exc.errors(include_url=False):
                error: dict[str, Any] = dict(details)
                loc = tuple(p for p in error["loc"] if isinstance(p, int) or _FIELD.match(p))
                if loc in merged:
                    merged[loc]["msg"] += f", or {error['msg'][0].lower()}{error['msg'][1:]}"
                else:
                    merged[loc] = {**error, "loc": loc}
            for error in merged.values():
                self._report_validation(entry, error, label)
            return None

    def _report_validation(self, entry: _Entry, error: Any, label: str) -> None:
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            parent = _locate(entry.node, loc[:-1], (entry.line, entry.column))
            container = entry.node
            for part in loc[:-1]:
                container = (
                    container[part]
                    if isinstance(container, CommentedMap | CommentedSeq)
                    else container
                )
            line, column = (
                container.lc.key(loc[-1]) if isinstance(container, CommentedMap) else parent
            )
            fields = _model_fields_at(loc[:-1], entry)
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
            entry.file.problem(
                line,
                column,
                f"{label}: unknown key {loc[-1]!r}",
                f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(fields)}",
            )
            return
        line, column = _locate(entry.node, loc, (entry.line, entry.column))
        message = error["msg"].removeprefix("Value error, ")
        entry.file.problem(
            line, column, f"{label}, {where}: {message}" if where else f"{label}: {message}"
        )

    def _expression(
        self,
        entry: _Entry,
        loc: tuple[Any, ...],
        text: str,
        scope: Mapping[str, FieldType],
        label: str,
    ) -> CompiledExpression | None:
        try:
            return compile_expression(text, scope)
        except ExpressionError as exc:
            line, column = _locate(entry.node, loc, (entry.line, entry.column))
            raw = _raw_at(entry.node, loc)
            entry.file.problem(
                line,
                column + _quote_width(raw) + exc.column,
                f"{label}, {text!r}: {exc.message}",
                exc.hint,
            )
            return None

    def _conditions(
        self,
        entry: _Entry,
        loc: tuple[Any, ...],
        texts: list[str],
        scope: Mapping[str, FieldType],
        label: str,
    ) -> tuple[CompiledExpression, ...] | None:
        raw = _raw_at(entry.node, loc)
        compiled = [
            self._expression(
                entry, loc + ((i,) if isinstance(raw, CommentedSeq) else ()), text, scope, label
            )
            for i, text in enumerate(texts)
        ]
        if any(c is None for c in compiled):
            return None
        return tuple(c for c in compiled if c is not None)

    # -- features --------------------------------------------------------------------------

    def feature(self, entry: _Entry) -> None:
        name = entry.node.get("name", "?")
        label = f"feature {name!r}"
        spec: FeatureSpec | None = self._validate(entry, FeatureSpec, label)
        if spec is None:
            return
        if spec.name in self.features:
            entry.file.problem(
                entry.line,
                entry.column,
                f"duplicate feature name {spec.name!r}",
                "feature names are shared by every rule file; rename one",
            )
            return
        scope = rule_scope(spec.event)
        conditions = self._conditions(entry, ("when",), spec.when, scope, label)
        value = None
        if spec.value is not None:
            value = self._expression(entry, ("value",), spec.value, scope, label)
            if value is None:
                return
            numeric = spec.aggregate in ("sum", "avg", "min", "max")
            if numeric and value.result_type.kind == STRING:
                line, column = _locate(entry.node, ("value",), (entry.line, entry.column))
                entry.file.problem(
                    line,
                    column,
                    f"{label}: {spec.aggregate} needs a number, {spec.value!r} is text",
                )
                return
        if conditions is None:
            return
        bucket = None
        if spec.window is not None:
            bucket = int(
                (spec.bucket or timedelta(seconds=default_bucket(spec.window))).total_seconds()
            )
        self.features[spec.name] = CompiledFeature(spec, conditions, value, bucket, signature(spec))

    # -- policy ------------------------------------------------------------------------------

    def policy(self, entries: list[_Entry]) -> PolicySpec | None:
        """The one policy of the ruleset (several would make "which cap applies" ambiguous)."""
        for extra in entries[1:]:
            first = entries[0]
            extra.file.problem(
                extra.line,
                extra.column,
                "a second 'policy:'",
                f"a ruleset has one policy; the first is at {first.file.display}:{first.line + 1}",
            )
        if not entries:
            return None
        spec: PolicySpec | None = self._validate(entries[0], PolicySpec, "policy")
        return spec

    # -- rules -------------------------------------------------------------------------------

    def rule(self, entry: _Entry) -> CompiledRule | None:
        node = entry.node
        label = f"rule {node.get('id', '?')!r}"
        spec: RuleSpec | None = self._validate(entry, RuleSpec, label)
        event_type = node.get("event")
        if event_type not in EVENT_MODELS:
            return None  # reported by validation; without it there is no scope to check against
        # Expressions are checked even when other keys are wrong: report everything at once.
        feature_types = {name: f.result_type for name, f in self.features.items()}
        scope = rule_scope(str(event_type), features=feature_types)
        when = plain_yaml(node.get("when", []))
        conditions = self._conditions(
            entry, ("when",), [when] if isinstance(when, str) else when, scope, label
        )
        renderers: dict[str, Callable[[Context], Any]] = {}
        params = node.get("params")
        failed_params = False
        if isinstance(params, CommentedMap):
            for name, value in params.items():
                try:
                    renderers[str(name)] = compile_param(plain_yaml(value), scope)
                except ExpressionError as exc:
                    failed_params = True
                    line, column = params.lc.value(name)
                    entry.file.problem(
                        line, column, f"{label}, param {name!r}: {exc.message}", exc.hint
                    )
        if spec is None or conditions is None or failed_params:
            return None
        after = self._sequence(entry, spec, label)
        unless = self._absence(entry, spec, feature_types, label)
        goal = (
            self._pattern(entry, ("goal",), spec.goal, spec.event, feature_types, label)
            if spec.goal
            else None
        )
        if (
            (spec.after and after is None)
            or (spec.unless and unless is None)
            or (spec.goal and goal is None)
        ):
            return None
        return CompiledRule(
            spec=spec,
            conditions=conditions,
            render_params=bundle(renderers),
            source=f"{entry.file.display}:{entry.line + 1}",
            after=after,
            unless=unless,
            goal=goal,
        )

    def _pattern(
        self,
        entry: _Entry,
        loc: tuple[Any, ...],
        pattern: Any,
        start_type: str,
        feature_types: Mapping[str, FieldType],
        label: str,
    ) -> CompiledPattern | None:
        scope = rule_scope(pattern.event, features=feature_types, start_event_type=start_type)
        conditions = self._conditions(entry, (*loc, "when"), pattern.when, scope, label)
        return None if conditions is None else CompiledPattern(pattern.event, conditions)

    def _absence(
        self, entry: _Entry, spec: RuleSpec, feature_types: Mapping[str, FieldType], label: str
    ) -> CompiledAbsence | None:
        if spec.unless is None:
            return None
        exits = [
            self._pattern(entry, ("unless", "events", i), pattern, spec.event, feature_types, label)
            for i, pattern in enumerate(spec.unless.events)
        ]
        if any(e is None for e in exits):
            return None
        return CompiledAbsence(spec.unless.within, tuple(e for e in exits if e is not None))

    def _sequence(self, entry: _Entry, spec: RuleSpec, label: str) -> CompiledSequence | None:
        """``after`` compiles to a hidden last-seen feature of the earlier event."""
        if spec.after is None:
            return None
        scope = rule_scope(spec.after.event)
        conditions = self._conditions(entry, ("after", "when"), spec.after.when, scope, label)
        if conditions is None:
            return None
        # Rules waiting for the same earlier event share one feature: each feature costs
        # an update on every event of its type.
        key = hashlib.blake2b(
            json.dumps([spec.after.event, spec.after.when]).encode(), digest_size=6
        ).hexdigest()
        name = f"_after_{key}"
        existing = next((f for f in self.hidden if f.name == name), None)
        if existing is not None:
            return CompiledSequence(existing.name, spec.after.within)
        hidden = FeatureSpec.model_construct(
            name=name,
            description="",
            aggregate="last_seen",
            event=spec.after.event,
            value=None,
            when=spec.after.when,
            window=None,
            bucket=None,
        )
        feature = CompiledFeature(hidden, conditions, None, None, signature(hidden))
        self.hidden.append(feature)
        return CompiledSequence(feature.name, spec.after.within)


def _raw_at(node: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if (isinstance(node, CommentedMap) and part in node) or (
            isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return None
    return node


def _model_fields_at(loc: tuple[Any, ...], entry: _Entry) -> list[str]:
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


_Parsed = tuple[list[_Entry], list[_Entry], _Entry | None]


def _only_policy_from(
    name: str, loaders: list[_FileLoader], parsed: list[_Parsed]
) -> list[_Parsed]:
    """Drop every policy but ``name``'s; ``name`` must hold a policy and nothing else."""
    kept: list[_Parsed] = []
    for loader, (features, entries, policy) in zip(loaders, parsed, strict=True):
        if loader.display != name:
            kept.append((features, entries, None))
            continue
        if policy is None:
            loader.problem(0, 0, "no 'policy:' in the policy file")
        for entry in (*features, *entries):
            loader.problem(
                entry.line,
                entry.column,
                "a policy file holds only 'policy:'",
                "move rules and features to the rules directory",
            )
        kept.append(([], [], policy))
    return kept


def load_ruleset(path: Path, policy: Path | None = None) -> Ruleset:
    """Load and compile every rule file under ``path``.

    ``policy``, a file holding only ``policy:``, replaces the rules' own policy: a backtest
    asks "what if the caps were tighter?" without editing the campaign's files.

    Raises:
        RuleFileError: listing every problem found; nothing is partially loaded.

    """
    sources = read_sources(path)
    if policy is None:
        return compile_sources(sources)
    policy_sources = read_sources(policy)
    return compile_sources({**sources, **policy_sources}, policy_from=next(iter(policy_sources)))


def compile_sources(sources: Mapping[str, str], policy_from: str | None = None) -> Ruleset:
    """Compile rule files given as ``{name: YAML text}`` (a directory, or a deployed bundle).

    With ``policy_from`` (one of the names), only that file's policy counts and it may hold
    nothing else.

    Raises:
        RuleFileError: listing every problem found; nothing is partially loaded.

    """
    loaders = [_FileLoader(display, text) for display, text in sources.items()]
    parsed = [loader.parse() for loader in loaders]
    if policy_from is not None:
        parsed = _only_policy_from(policy_from, loaders, parsed)
    compiler = _Compiler()
    for features, _, _ in parsed:
        for entry in features:
            compiler.feature(entry)
    policy = compiler.policy([entry for _, _, entry in parsed if entry is not None])
    rules: list[CompiledRule] = []
    first_seen: dict[str, str] = {}
    for _, entries, _ in parsed:
        for entry in entries:
            rule = compiler.rule(entry)
            if rule is None:
                continue
            if rule.id in first_seen:
                entry.file.problem(
                    entry.line,
                    entry.column,
                    f"duplicate rule id {rule.id!r}",
                    f"first defined at {first_seen[rule.id]}; rule ids must be unique",
                )
                continue
            first_seen[rule.id] = rule.source
            rules.append(rule)
    problems = [p for loader in loaders for p in loader.problems]
    if problems:
        raise RuleFileError(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
    return Ruleset.build(rules, list(compiler.features.values()), compiler.hidden, policy)
