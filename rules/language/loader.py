"""Load YAML rule files into a compiled :class:`Ruleset`, or refuse them with every problem.

Loading never stops at the first mistake: marketing ops get every problem at once, each
with file, line and column (1-based, as editors show them) and a hint. A ruleset with any
problem is refused whole, so the ruleset already running stays in force.

Two passes: features are compiled first (from every file: they are shared), then rules,
whose expressions are type-checked against the event, the profile, the state and the
declared features.

Rule files are bounded (``MAX_*`` below), because the worker loads whatever was deployed:
a 2 KB file of nested YAML aliases once passed ``kairos rules deploy`` and then froze a
worker for ten seconds and a gigabyte. Every limit is checked while the YAML is read,
before any value is built or expanded, and a breach is one more problem with file, line and
column, never a traceback.
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
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.scanner import RoundTripScanner

from rules.expressions import (
    STRING,
    CompiledExpression,
    Context,
    ExpressionError,
    FieldType,
    compile_expression,
)
from rules.features import CompiledFeature, default_bucket, signature
from rules.params import MAX_PARAM_BYTES, MAX_PARAMS_BYTES, bundle, compile_param, literal_size
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

#: Bytes per rule file. The round-trip YAML reader is pure Python (about 0.3 MB/s), so this
#: keeps the largest file's validation under half a second; a hundred rules fit, and a
#: ruleset may have any number of files. Checked before the file is read or parsed.
MAX_FILE_BYTES = 128 * 1024

#: Levels of nested lists and mappings. A real rule file needs about ten; the YAML reader
#: and ``plain_yaml`` recurse once per level, so 5,000 ``[`` ended in a ``RecursionError``,
#: and the reader's flow-key bookkeeping is quadratic in the depth. Counted as the reader
#: meets each ``[`` / ``{`` and each node, so a deep file stops at level 65.
MAX_NESTING = 64

#: Characters (roughly: one per scalar character, two per list or mapping) that the aliases
#: of one file may repeat once expanded. Anchors and aliases (``&a`` / ``*a``) are fine for
#: sharing a ``when:`` list or a few defaults; nested, they repeat a 2 KB file into a 33 MB
#: action ("billion laughs"). Summed per alias while the YAML is composed, before anything
#: is expanded.
MAX_ALIAS_EXPANSION = 64 * 1024

#: Values (scalars, lists and mappings) per rule file. Reading costs about 50 µs a value
#: however short it is, so 128 KiB of ``1,1,1,...`` took three seconds; ten thousand keep
#: any file under half a second and hold two hundred rules of forty values each.
MAX_VALUES = 10_000

#: Rules per ruleset. Every event evaluates the rules of its type, and decisions, reports
#: and the rule index grow with the count; this is fifty times the example pack's need.
MAX_RULES = 1000

#: Features per ruleset. Each one is updated on every event of its type and stored in
#: every customer's state, so the state record's size is bounded only if their number is.
MAX_FEATURES = 200

_NESTING_HINT = "flatten it: a rule file needs about ten levels"


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


class _LimitError(MarkedYAMLError):
    """A rule-file limit broken while reading the YAML: a message with a hint and a mark."""

    def __init__(self, message: str, mark: Any, hint: str) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.hint = hint


class _BoundedScanner(RoundTripScanner):
    """Refuses the 65th nested ``[`` or ``{`` as the scanner meets it.

    The composer's depth limit comes too late for flow collections: for every open ``[``
    the scanner keeps a possible key and re-checks all of them on each token, so 5,000
    ``[`` cost most of a second before the first node is composed.
    """

    def fetch_flow_collection_start(self, token_class: Any, to_push: str) -> None:
        if self.flow_level >= MAX_NESTING:
            raise _LimitError(
                f"lists and mappings nested more than {MAX_NESTING} levels deep",
                self.reader.get_mark(),
                _NESTING_HINT,
            )
        super().fetch_flow_collection_start(token_class, to_push)


class _BoundedComposer(Composer):
    """Composes the node graph, refusing too many values, alias loops and alias bombs.

    An alias is composed as the anchored node itself (shared, not copied), so counting
    here is cheap and exact: each node's expanded size is computed once, when it is
    complete, and each alias adds its node's size to the file's total.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        # YAML lets an anchor be redefined; the warning went to stderr once per anchor.
        self.warn_double_anchors = False
        self._sizes: dict[int, int] = {}
        self._expansion = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            if len(self._sizes) >= MAX_VALUES:
                raise _LimitError(
                    f"more than {MAX_VALUES:,} values in one file",
                    self.parser.peek_event().start_mark,
                    "split it into several rule files",
                )
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = self._expanded_size(node)
            return node
        event = self.parser.peek_event()
        node = super().compose_node(parent, index)
        size = self._sizes.get(id(node))
        if size is None:  # the anchored node is not complete: the alias is inside it
            raise _LimitError(
                f"alias *{event.anchor} is inside the value it repeats",
                event.start_mark,
                "an alias cannot repeat the list or mapping that contains it",
            )
        self._expansion += size
        if self._expansion > MAX_ALIAS_EXPANSION:
            raise _LimitError(
                f"alias *{event.anchor} makes this file's aliases repeat more than "
                f"{MAX_ALIAS_EXPANSION // 1024} KiB of values",
                event.start_mark,
                "write the values out: aliases that repeat aliases grow exponentially",
            )
        return node

    def _expanded_size(self, node: Any) -> int:
        if isinstance(node, ScalarNode):
            return 1 + len(node.value)
        if isinstance(node, SequenceNode):
            return 2 + sum(self._sizes[id(item)] for item in node.value)
        if isinstance(node, MappingNode):
            return 2 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        return 1


class _Constructor(RoundTripConstructor):
    """Gives a value that cannot be built (``2026-02-30``, a 5,000-digit number) its mark.

    Ruamel raises a bare ``ValueError`` for those (and an ``AttributeError`` for a
    ``!!set`` tag on a scalar), with no position: a traceback instead of a problem.
    """

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except Exception as exc:  # ruamel's constructors fail in many ways on odd input
            shown = f"{node.value[:40]!r}" if isinstance(node, ScalarNode) else "this value"
            if isinstance(exc, ValueError | OverflowError):
                reason = str(exc).split(";")[0]  # not "use sys.set_int_max_str_digits()"
            else:
                reason = f"not a valid {getattr(node.tag, 'value', node.tag)}"
            raise ConstructorError(
                problem=f"cannot read {shown}: {reason}",
                problem_mark=node.start_mark,
            ) from exc


def _bounded_yaml() -> YAML:
    """A round-trip reader (line and column of every value) with the limits above."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.max_depth = MAX_NESTING
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _Constructor
    return yaml


def _too_large(display: str, size: int) -> Problem:
    return Problem(
        display,
        1,
        1,
        f"the file is {size:,} bytes; the limit is {MAX_FILE_BYTES // 1024} KiB",
        "split it into several rule files",
    )


def _position(text: str, index: int) -> tuple[int, int]:
    """0-based (line, column) of character ``index`` of ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), index - line_start


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
        size = len(self.text.encode("utf-8", errors="replace"))
        if size > MAX_FILE_BYTES:
            self.problems.append(_too_large(self.display, size))
            return [], [], None
        try:
            document = _bounded_yaml().load(self.text)
        except _LimitError as exc:
            self.problem(exc.problem_mark.line, exc.problem_mark.column, exc.problem, exc.hint)
            return [], [], None
        except MaxDepthExceededError as exc:
            mark = exc.problem_mark
            self.problem(
                mark.line,
                mark.column,
                f"lists and mappings nested more than {MAX_NESTING} levels deep",
                _NESTING_HINT,
            )
            return [], [], None
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            self.problem(
                mark.line if mark else 0, mark.column if mark else 0, f"YAML: {exc.problem}"
            )
            return [], [], None
        except ReaderError as exc:
            line, column = _position(self.text, exc.position)
            shown = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a byte"
            self.problem(
                line,
                column,
                f"YAML: character {shown} is not allowed: {exc.reason}",
                "remove the control character",
            )
            return [], [], None
        except (YAMLError, ValueError, OverflowError) as exc:  # the reader's last resort
            self.problem(0, 0, f"YAML: {str(exc).splitlines()[0] if str(exc) else exc!r}")
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
                self._report_validation(entry, error, label)
            return None
        except (LookupError, TypeError, ArithmeticError) as exc:
            # A validator raised what pydantic does not wrap (ZoneInfo's KeyError for an
            # unknown time zone): still one problem, not a traceback.
            reason = exc.args[0] if exc.args else type(exc).__name__
            entry.file.problem(entry.line, entry.column, f"{label}: {reason}")
            return None

    def _report_validation(self, entry: _Entry, error: Any, label: str) -> None:
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden" and loc:
            line, column = _locate(entry.node, loc[:-1], (entry.line, entry.column))
            container = _raw_at(entry.node, loc[:-1])
            # plain_yaml made every key text: find the key as written (None, 1, "TTL").
            keys = [k for k in container if str(k) == str(loc[-1])] if container else []
            if isinstance(container, CommentedMap) and keys:
                line, column = container.lc.key(keys[0])
            fields = _model_fields_at(loc[:-1], entry)
            close = difflib.get_close_matches(str(loc[-1]).lower(), fields, n=1)
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
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return None  # not a list of text: validation reports it, with its position
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
        if not isinstance(event_type, str) or event_type not in EVENT_MODELS:
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
            failed_params = not self._params_fit(entry, params, label)
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

    def _params_fit(self, entry: _Entry, params: CommentedMap, label: str) -> bool:
        """Literal params within the limits that rendering enforces again at run time.

        Only the written text counts here (placeholders render to event data later); a
        rule whose literals alone are too large would fail on every event, so it is
        refused now, where the mistake has a line and column.
        """
        fit = True
        total = 0
        for name, value in params.items():
            size = literal_size(plain_yaml(value))
            total += len(str(name)) + size
            if size > MAX_PARAM_BYTES:
                fit = False
                line, column = params.lc.value(name)
                entry.file.problem(
                    line,
                    column,
                    f"{label}, param {name!r}: {size:,} bytes; the limit is {MAX_PARAM_BYTES:,}",
                    "a template takes short fields: keep long text in the template",
                )
        if fit and total > MAX_PARAMS_BYTES:
            fit = False
            line, column = entry.node.lc.key("params")
            entry.file.problem(
                line,
                column,
                f"{label}: params are {total:,} bytes; the limit is {MAX_PARAMS_BYTES:,}",
                "a template takes short fields: keep long text in the template",
            )
        return fit

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
        RuleFileError: the path does not exist, holds no rule file, or a file is not UTF-8
            or larger than ``MAX_FILE_BYTES``.

    """
    path = Path(path)
    if not path.exists():
        raise RuleFileError([Problem(str(path), 1, 1, "no such file or directory")])
    files = rule_files(path)
    if not files:
        raise RuleFileError([Problem(str(path), 1, 1, "no rule files (*.yaml, *.yml) found")])
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    for file in files:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:  # not even read: it could be any size
            problems.append(_too_large(str(file), size))
            continue
        try:
            sources[str(file)] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(file), 1, 1, f"not UTF-8 text: {exc.reason}"))
    if problems:
        raise RuleFileError(problems)
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


def _over_limit(entries: list[_Entry], limit: int, what: str) -> bool:
    """Report the first entry past ``limit``; ``True`` if there is one."""
    if len(entries) <= limit:
        return False
    first = entries[limit]
    first.file.problem(
        first.line,
        first.column,
        f"more than {limit:,} {what} in the ruleset ({len(entries):,})",
        f"a ruleset holds at most {limit:,} {what}; remove the ones that ended",
    )
    return True


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
    too_many = _over_limit([e for f, _, _ in parsed for e in f], MAX_FEATURES, "features")
    too_many |= _over_limit([e for _, r, _ in parsed for e in r], MAX_RULES, "rules")
    if too_many:  # compiling thousands of entries only to refuse them would take seconds
        problems = [p for loader in loaders for p in loader.problems]
        raise RuleFileError(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
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
