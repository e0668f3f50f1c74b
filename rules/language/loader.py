"""Load YAML rule files into a compiled :class:`Ruleset`, or refuse them with every problem.

Loading never stops at the first mistake: marketing ops get every problem at once, each
with file, line and column (1-based, as editors show them) and a hint. A ruleset with any
problem is refused whole, so the ruleset already running stays in force.

Two passes: features are compiled first (from every file: they are shared), then rules,
whose expressions are type-checked against the event, the profile, the state and the
declared features.

Rule files are bounded: each file as it is read (``rules.language.yaml_reader``), and the
ruleset's rules and features here (``MAX_*`` below).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from rules.errors import Problem, RuleFileError
from rules.features import CompiledFeature, default_bucket, signature
from rules.language.entries import Entry, FileLoader
from rules.language.expression_types import ANY, STRING, Context, ExpressionError, FieldType
from rules.language.params import (
    MAX_PARAM_BYTES,
    MAX_PARAMS_BYTES,
    bundle,
    compile_param,
    literal_size,
)
from rules.language.scope import rule_scope
from rules.language.spec import AbsenceSpec, FeatureSpec, GoalSpec, RuleSpec, SequenceSpec
from rules.language.yaml_reader import MAX_FILE_BYTES, file_too_large, plain_yaml
from rules.policy import PolicySpec
from rules.ruleset import (
    CompiledAbsence,
    CompiledPattern,
    CompiledRule,
    CompiledSequence,
    Ruleset,
)
from schemas.events import EVENT_MODELS

RULE_FILE_SUFFIXES = (".yaml", ".yml")

#: Rules per ruleset. Every event evaluates the rules of its type, and decisions, reports
#: and the rule index grow with the count; this is fifty times the example pack's need.
MAX_RULES = 1000

#: Features per ruleset. Each one is updated on every event of its type and stored in
#: every customer's state, so the state record's size is bounded only if their number is.
MAX_FEATURES = 200


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


_Part = TypeVar("_Part", bound=BaseModel)


def _part(spec: RuleSpec | None, node: CommentedMap, key: str, model: type[_Part]) -> _Part | None:
    """``spec.<key>``; when the rule as a whole was refused, the part validated on its own.

    A part that does not validate alone is skipped silently: the rule's own validation has
    already reported its problems, at their lines.
    """
    if spec is not None:
        part: _Part | None = getattr(spec, key)
        return part
    if key not in node:
        return None
    try:
        return model.model_validate(plain_yaml(node[key]))
    except (ValidationError, LookupError, TypeError, ArithmeticError):
        return None


class _Compiler:
    """Compiles entries, reporting problems on the file each entry came from."""

    def __init__(self) -> None:
        self.features: dict[str, CompiledFeature] = {}
        self.hidden: list[CompiledFeature] = []
        #: Features refused (each problem reported): rules may still read them, so a
        #: mistake in a feature is reported once, not again in every rule that uses it.
        self.refused: set[str] = set()

    # -- features --------------------------------------------------------------------------

    def feature(self, entry: Entry) -> None:
        name = entry.node.get("name", "?")
        if not self._feature(entry, name) and isinstance(name, str):
            self.refused.add(name)

    def _feature(self, entry: Entry, name: Any) -> bool:
        """Compile one feature; ``False`` when it was refused (each problem reported)."""
        label = f"feature {name!r}"
        spec: FeatureSpec | None = entry.validate(FeatureSpec, label)
        if spec is None:
            return False
        if spec.name in self.features:
            entry.file.problem(
                entry.line,
                entry.column,
                f"duplicate feature name {spec.name!r}",
                "feature names are shared by every rule file; rename one",
            )
            return True  # the first of the name stands
        scope = rule_scope(spec.event)
        conditions = entry.conditions(("when",), spec.when, scope, label)
        value = None
        if spec.value is not None:
            value = entry.expression(("value",), spec.value, scope, label)
            if value is None:
                return False
            numeric = spec.aggregate in ("sum", "avg", "min", "max")
            if numeric and value.result_type.kind == STRING:
                line, column = entry.locate(("value",))
                entry.file.problem(
                    line,
                    column,
                    f"{label}: {spec.aggregate} needs a number, {spec.value!r} is text",
                )
                return False
        if conditions is None:
            return False
        bucket = None
        if spec.window is not None:
            bucket = int(
                (spec.bucket or timedelta(seconds=default_bucket(spec.window))).total_seconds()
            )
        self.features[spec.name] = CompiledFeature(spec, conditions, value, bucket, signature(spec))
        return True

    # -- policy ------------------------------------------------------------------------------

    def policy(self, entries: list[Entry]) -> PolicySpec | None:
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
        spec: PolicySpec | None = entries[0].validate(PolicySpec, "policy")
        return spec

    # -- rules -------------------------------------------------------------------------------

    def rule(self, entry: Entry) -> CompiledRule | None:
        node = entry.node
        label = f"rule {node.get('id', '?')!r}"
        spec: RuleSpec | None = entry.validate(RuleSpec, label)
        event_type = node.get("event")
        if not isinstance(event_type, str) or event_type not in EVENT_MODELS:
            return None  # reported by validation; without it there is no scope to check against
        # Expressions are checked even when other keys are wrong: report everything at once.
        feature_types = {name: FieldType(ANY) for name in self.refused} | {
            name: f.result_type for name, f in self.features.items()
        }
        scope = rule_scope(str(event_type), features=feature_types)
        when = plain_yaml(node.get("when", []))
        conditions = entry.conditions(
            ("when",), [when] if isinstance(when, str) else when, scope, label
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
        # The parts are checked even when the rule as a whole was refused (validation
        # reported why): each part that validates alone still has its expressions checked.
        after_spec = _part(spec, node, "after", SequenceSpec)
        unless_spec = _part(spec, node, "unless", AbsenceSpec)
        goal_spec = _part(spec, node, "goal", GoalSpec)
        after = self._sequence(entry, after_spec, label)
        unless = self._absence(entry, unless_spec, str(event_type), feature_types, label)
        goal = (
            self._pattern(entry, ("goal",), goal_spec, str(event_type), feature_types, label)
            if goal_spec
            else None
        )
        if (
            spec is None
            or conditions is None
            or failed_params
            or (spec.after and after is None)
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

    def _params_fit(self, entry: Entry, params: CommentedMap, label: str) -> bool:
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
        entry: Entry,
        loc: tuple[Any, ...],
        pattern: Any,
        start_type: str,
        feature_types: Mapping[str, FieldType],
        label: str,
    ) -> CompiledPattern | None:
        scope = rule_scope(pattern.event, features=feature_types, start_event_type=start_type)
        conditions = entry.conditions((*loc, "when"), pattern.when, scope, label)
        return None if conditions is None else CompiledPattern(pattern.event, conditions)

    def _absence(
        self,
        entry: Entry,
        unless: AbsenceSpec | None,
        start_type: str,
        feature_types: Mapping[str, FieldType],
        label: str,
    ) -> CompiledAbsence | None:
        if unless is None:
            return None
        exits = [
            self._pattern(entry, ("unless", "events", i), pattern, start_type, feature_types, label)
            for i, pattern in enumerate(unless.events)
        ]
        if any(e is None for e in exits):
            return None
        return CompiledAbsence(unless.within, tuple(e for e in exits if e is not None))

    def _sequence(
        self, entry: Entry, after: SequenceSpec | None, label: str
    ) -> CompiledSequence | None:
        """``after`` compiles to a hidden last-seen feature of the earlier event."""
        if after is None:
            return None
        scope = rule_scope(after.event)
        conditions = entry.conditions(("after", "when"), after.when, scope, label)
        if conditions is None:
            return None
        # Rules waiting for the same earlier event share one feature: each feature costs
        # an update on every event of its type.
        key = hashlib.blake2b(
            json.dumps([after.event, after.when]).encode(), digest_size=6
        ).hexdigest()
        name = f"_after_{key}"
        existing = next((f for f in self.hidden if f.name == name), None)
        if existing is not None:
            return CompiledSequence(existing.name, after.within)
        hidden = FeatureSpec.model_construct(
            name=name,
            description="",
            aggregate="last_seen",
            event=after.event,
            value=None,
            when=after.when,
            window=None,
            bucket=None,
        )
        feature = CompiledFeature(hidden, conditions, None, None, signature(hidden))
        self.hidden.append(feature)
        return CompiledSequence(feature.name, after.within)


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
            problems.append(file_too_large(str(file), size))
            continue
        try:
            sources[str(file)] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(file), 1, 1, f"not UTF-8 text: {exc.reason}"))
    if problems:
        raise RuleFileError(problems)
    return sources


_Parsed = tuple[list[Entry], list[Entry], Entry | None]


def _only_policy_from(name: str, loaders: list[FileLoader], parsed: list[_Parsed]) -> list[_Parsed]:
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


def _check_ids(entries: list[Entry]) -> None:
    """Rule ids are unique: checked on every rule as written, valid or not."""
    first_seen: dict[str, Entry] = {}
    for entry in entries:
        rule_id = entry.node.get("id")
        if not isinstance(rule_id, str):
            continue  # validation reports a missing or malformed id
        first = first_seen.setdefault(rule_id, entry)
        if first is not entry:
            entry.file.problem(
                entry.line,
                entry.column,
                f"duplicate rule id {rule_id!r}",
                f"first defined at {first.file.display}:{first.line + 1}; rule ids must be unique",
            )


def _check_waves(entries: list[Entry]) -> None:
    """A wave follows a rule of the ruleset, on the same trigger, without a loop.

    Checked on the rules as written, so a wave naming a rule that has problems of its own
    is not reported as naming an unknown rule.
    """
    by_id: dict[str, Entry] = {}
    for entry in entries:
        by_id.setdefault(str(entry.node.get("id")), entry)

    def after(entry: Entry) -> str | None:
        wave = entry.node.get("wave")
        target = wave.get("after") if isinstance(wave, CommentedMap) else None
        return target if isinstance(target, str) else None

    for rule_id, entry in by_id.items():
        target = after(entry)
        if target is None:
            continue
        line, column = entry.locate(("wave", "after"))
        previous = by_id.get(target)
        if previous is None:
            close = difflib.get_close_matches(target, by_id, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "name a rule of this ruleset"
            entry.file.problem(line, column, f"wave after unknown rule {target!r}", hint)
            continue
        event, trigger = entry.node.get("event"), previous.node.get("event")
        if isinstance(event, str) and isinstance(trigger, str) and event != trigger:
            line, column = entry.locate(("event",))
            entry.file.problem(
                line,
                column,
                f"a wave's event is its campaign's trigger: {trigger!r} "
                f"(the event of {target!r}), not {event!r}",
            )
        seen = {rule_id}
        step: str | None = target
        while step is not None and step in by_id:
            if step in seen:
                entry.file.problem(line, column, f"waves after one another in a loop: {rule_id}")
                break
            seen.add(step)
            step = after(by_id[step])


def _over_limit(entries: list[Entry], limit: int, what: str) -> bool:
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
    loaders = [FileLoader(display, text) for display, text in sources.items()]
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
    entries = [entry for _, rule_entries, _ in parsed for entry in rule_entries]
    _check_ids(entries)
    _check_waves(entries)
    rules: list[CompiledRule] = []
    compiled_ids: set[str] = set()
    for entry in entries:
        rule = compiler.rule(entry)
        if rule is not None and rule.id not in compiled_ids:  # a duplicate is reported
            compiled_ids.add(rule.id)
            rules.append(rule)
    problems = [p for loader in loaders for p in loader.problems]
    if problems:
        raise RuleFileError(sorted(problems, key=lambda p: (p.file, p.line, p.column)))
    return Ruleset.build(rules, list(compiler.features.values()), compiler.hidden, policy)
