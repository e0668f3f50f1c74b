"""Benchmark of rule-expression engines on Kairos' own rule conditions (ADR 0001).

Compares the hand-written whitelisted-AST compiler in ``rules/language/expressions.py`` with
``simpleeval``, ``cel-python`` (interpreted and transpiled runners) and GoRules
``zen-engine`` on eight conditions of the kind marketing ops write, over one realistic
drop-off, transaction and app click with the customer's profile, state and features.

For every engine and condition it reports the evaluation time (µs per call, median of
7 timeit repeats), whether the answer matches Kairos' semantics (``null`` never satisfies
an ordering, exact decimals), and the compile time; then the per-event cost of giving
the engine its input, and what each engine says about three broken rules.

Each library gets the data in its natural form: the pydantic models for Kairos, plain
JSON-shaped dicts (numbers as floats, timestamps as RFC 3339 strings) for the others,
converted to CEL values for cel-python. A library that is not installed is reported as
"not installed" and skipped, so this runs in the project venv too.

Run it from the repository root (the script puts the root on ``sys.path`` itself)::

    python -m venv /tmp/adrvenv
    /tmp/adrvenv/bin/pip install pydantic ruamel.yaml cel-python simpleeval zen-engine
    /tmp/adrvenv/bin/python bench/expression_engines.py
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("RUST_BACKTRACE", "0")  # zen-engine appends a Rust backtrace otherwise

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REPEATS = 7
TARGET_SECONDS = 0.02  # one timeit run lasts at least this long


# -- the conditions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One rule condition in Kairos syntax, the event it triggers on and the right answer."""

    key: str
    event_type: str
    source: str
    expected: object
    what: str


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "funnel",
        "drop_off",
        'event.flow == "personal_loan_application" and event.step >= 3'
        ' and profile.tier in ["affluent", "private"]',
        True,
        "and, in-list",
    ),
    Condition(
        "salary",
        "transaction",
        'event.amount >= 10000 and event.category == "salary"',
        True,
        "decimal amount",
    ),
    Condition(
        "prefix",
        "transaction",
        'startswith(event.counterparty, "OTHERBANK")',
        True,
        "string prefix",
    ),
    Condition(
        "dormant",
        "app_click",
        "days_since(state.last_seen.app_click) >= 60",
        True,
        "custom function",
    ),
    Condition(
        "features",
        "transaction",
        "features.transfers_out_7d >= 0.5 * features.avg_balance_30d",
        True,
        "arithmetic",
    ),
    Condition(
        "null",
        "transaction",
        "event.balance_after < 500",
        False,
        "null field, ordering",
    ),
    Condition(
        "cents",
        "transaction",
        "event.amount * 0.07 <= 840.007",
        True,
        "exact decimals",
    ),
    Condition(
        "nokey",
        "transaction",
        "days_since(state.last_seen.mortgage_calculator) >= 30",
        False,
        "missing map key",
    ),
)

# The same conditions in each library's dialect; a missing key means "cannot express".
CEL_DIALECT: dict[str, str] = {
    "funnel": 'event.flow == "personal_loan_application" && event.step >= 3'
    ' && profile.tier in ["affluent", "private"]',
    "salary": 'event.amount >= 10000.0 && event.category == "salary"',
    "prefix": 'event.counterparty.startsWith("OTHERBANK")',
    "dormant": "days_since(state.last_seen.app_click) >= 60.0",
    "features": "features.transfers_out_7d >= 0.5 * features.avg_balance_30d",
    "null": "event.balance_after < 500.0",
    "cents": "event.amount * 0.07 <= 840.007",
    "nokey": "days_since(state.last_seen.mortgage_calculator) >= 30.0",
}
ZEN_DIALECT: dict[str, str] = {
    "funnel": CONDITIONS[0].source,
    "salary": CONDITIONS[1].source,
    "prefix": 'startsWith(event.counterparty, "OTHERBANK")',
    "dormant": 'd(now).diff(d(state.last_seen.app_click), "day") >= 60',
    "features": CONDITIONS[4].source,
    "null": CONDITIONS[5].source,
    "cents": CONDITIONS[6].source,
    "nokey": 'd(now).diff(d(state.last_seen.mortgage_calculator), "day") >= 30',
}
PYTHON_DIALECT: dict[str, str] = {c.key: c.source for c in CONDITIONS}

# Broken rules a validator should catch before deployment: (label, event type, per dialect).
BROKEN: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "typo in a field",
        "transaction",
        {
            "python": 'event.amount > 5 and event.catgory == "salary"',
            "cel": 'event.amount > 5.0 && event.catgory == "salary"',
        },
    ),
    (
        "unclosed bracket",
        "transaction",
        {
            "python": 'event.amount >= 10000 and (event.category == "salary"',
            "cel": 'event.amount >= 10000.0 && (event.category == "salary"',
        },
    ),
    (
        "number vs string",
        "transaction",
        {"python": 'event.amount > "5"', "cel": 'event.amount > "5"'},
    ),
)


# -- the input data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One event with everything a rule may read, as Kairos holds it (pydantic models)."""

    event_type: str
    event: Any
    profile: Any
    state: Any
    features: Mapping[str, Decimal]  # already aggregated: the same work for every engine
    now: datetime = NOW


def kairos_path() -> None:
    """Make ``schemas`` and ``rules`` importable when run from a plain checkout."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


def build_samples() -> dict[str, Sample]:
    """A salary transaction, a loan-funnel drop-off and an app click of one customer."""
    kairos_path()
    from schemas.events import AppClick, DropOff, Transaction
    from schemas.profile import CustomerProfile
    from schemas.state import CustomerState

    base = {"customer_id": "C1042", "occurred_at": NOW, "schema_version": 1}
    profile = CustomerProfile(
        customer_id="C1042",
        updated_at=NOW - timedelta(days=2),
        tier="affluent",
        tags=["salary_domiciled", "mortgage_prospect"],
        consent={"sms": True, "push": True, "rm": False},  # type: ignore[arg-type]
        push_enabled=True,
        timezone="Europe/Madrid",
        language="es",
        rm_id="RM-17",
    )
    state = CustomerState(
        customer_id="C1042",
        event_counts={"app_click": 41, "transaction": 230, "drop_off": 2},
        last_seen={
            "app_click": NOW - timedelta(days=83),
            "transaction": NOW - timedelta(days=1),
            "drop_off": NOW - timedelta(hours=3),
        },
        last_screen="accounts",
        recent_event_ids=[f"evt-{n:05d}" for n in range(64)],  # the cap, a regular customer
        contacts_sent=3,
        last_contact_at=NOW - timedelta(days=20),
    )
    features = {"transfers_out_7d": Decimal("6200.50"), "avg_balance_30d": Decimal("11800.00")}
    events: dict[str, Any] = {
        "transaction": Transaction(
            event_id="evt-tx-1",
            amount=Decimal("12000.10"),
            currency="EUR",
            direction="credit",
            category="salary",
            counterparty="OTHERBANK SA PAYROLL",
            **base,  # type: ignore[arg-type]
        ),
        "drop_off": DropOff(
            event_id="evt-do-1",
            flow="personal_loan_application",
            step=3,
            steps_total=5,
            **base,  # type: ignore[arg-type]
        ),
        "app_click": AppClick(
            event_id="evt-ck-1",
            screen="accounts",
            platform="ios",
            session_id="s-9",
            **base,  # type: ignore[arg-type]
        ),
    }
    return {name: Sample(name, event, profile, state, features) for name, event in events.items()}


def plain(value: Any) -> Any:
    """JSON-shaped Python: models to dicts, decimals to floats, timestamps to RFC 3339."""
    if hasattr(value, "model_dump"):
        return plain(value.model_dump())
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def plain_roots(sample: Sample) -> dict[str, Any]:
    """The roots a rule reads, as dicts; ``state`` only with the fields rule_scope exposes."""
    kairos_path()
    from rules.language.scope import rule_scope

    visible = rule_scope(sample.event_type)["state"].fields or {}
    state = {name: plain(getattr(sample.state, name)) for name in visible}
    return {
        "event": plain(sample.event),
        "profile": plain(sample.profile),
        "state": state,
        "features": plain(sample.features),
    }


def days_between(now: datetime, moment: str | None) -> float | None:
    """``days_since`` for engines that see timestamps as strings."""
    if moment is None:
        return None
    return (now - datetime.fromisoformat(moment)).total_seconds() / 86400


# -- the engines -------------------------------------------------------------------------

Evaluate = Callable[[Any], Any]


@dataclass
class Engine:
    """An engine adapted to one interface: prepare an event's input, compile a condition."""

    name: str
    distribution: str
    dialect: Mapping[str, str]
    prepare: Callable[[Sample], Any]
    compile: Callable[[str, Sample], Evaluate]
    describe_error: Callable[[Exception], str] = field(default=lambda exc: first_line(exc))


def first_line(exc: Exception, width: int = 88) -> str:
    """The first line of an exception's text, shortened for a table."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= width else text[: width - 1] + "…"


def load(module: str) -> ModuleType | None:
    """Import an optional module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def kairos_engine() -> Engine | None:
    """The hand-written compiler, reading the pydantic models directly."""
    kairos_path()
    try:
        from rules.language.expression_types import NUMBER, ExpressionError, FieldType
        from rules.language.expressions import compile_expression
        from rules.language.scope import rule_scope
    except ImportError:
        return None

    @dataclass(frozen=True)
    class Ctx:
        roots: Mapping[str, Any]
        now: datetime

    def prepare(sample: Sample) -> Ctx:
        roots = {
            "event": sample.event,
            "profile": sample.profile,
            "state": sample.state,
            "features": sample.features,
        }
        return Ctx(roots, sample.now)

    def compile_(source: str, sample: Sample) -> Evaluate:
        declared = {name: FieldType(NUMBER) for name in sample.features}
        try:
            scope = rule_scope(sample.event_type, features=declared)
        except TypeError:  # a rule_scope from before features were declared
            scope = {
                **rule_scope(sample.event_type),
                "features": FieldType("record", fields=declared),
            }
        return compile_expression(source, scope).evaluate

    def describe(exc: Exception) -> str:
        if isinstance(exc, ExpressionError):
            hint = f" ({exc.hint})" if exc.hint else ""
            return f"col {exc.column}: {exc.message}{hint}"
        return first_line(exc)

    return Engine("kairos-ast", "kairos", PYTHON_DIALECT, prepare, compile_, describe)


def simpleeval_engine() -> Engine | None:
    """Simpleeval with compound types; dict keys read as attributes (its default)."""
    simpleeval = load("simpleeval")
    if simpleeval is None:
        return None

    def prepare(sample: Sample) -> dict[str, Any]:
        return {**plain_roots(sample), "true": True, "false": False, "null": None}

    def compile_(source: str, sample: Sample) -> Evaluate:
        def startswith(text: str | None, prefix: str) -> bool:
            return text is not None and text.startswith(prefix)

        functions = {
            "days_since": lambda moment: days_between(sample.now, moment),
            "startswith": startswith,
        }
        evaluator = simpleeval.EvalWithCompoundTypes(functions=functions)
        parsed = evaluator.parse(source)

        def evaluate(names: dict[str, Any]) -> Any:
            evaluator.names = names
            return evaluator.eval(source, previously_parsed=parsed)

        return evaluate

    def describe(exc: Exception) -> str:
        if isinstance(exc, SyntaxError):
            return f"line {exc.lineno} col {exc.offset}: {exc.msg}"
        return first_line(exc)

    return Engine("simpleeval", "simpleeval", PYTHON_DIALECT, prepare, compile_, describe)


def cel_engine(transpiled: bool) -> Engine | None:
    """cel-python, with its tree-walking interpreter or its Python transpiler."""
    celpy = load("celpy")
    if celpy is None:
        return None
    logging.getLogger("celpy").setLevel(logging.CRITICAL)  # it logs errors it also raises
    runner = celpy.CompiledRunner if transpiled else celpy.InterpretedRunner
    environment = celpy.Environment(runner_class=runner)

    def prepare(sample: Sample) -> Any:
        return celpy.json_to_cel(plain_roots(sample))

    def own_parser() -> None:
        # cel-python keeps one class-level lark parser, built with the tree class of the
        # first runner used; the two runners need different trees, so rebuild on a switch.
        shared = celpy.celparser.CELParser.CEL_PARSER
        if shared is None or shared.options.tree_class is not runner.tree_node_class:
            celpy.celparser.CELParser.CEL_PARSER = None
            environment.cel_parser = celpy.celparser.CELParser(tree_class=runner.tree_node_class)

    def compile_(source: str, sample: Sample) -> Evaluate:
        own_parser()

        def days_since(moment: Any) -> Any:
            days = days_between(sample.now, None if moment is None else str(moment))
            return None if days is None else celpy.celtypes.DoubleType(days)

        program = environment.program(
            environment.compile(source), functions={"days_since": days_since}
        )
        return lambda activation: program.evaluate(activation)

    def describe(exc: Exception) -> str:
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        if line is not None:
            return f"line {line} col {column}: {first_line(exc, 70)}"
        return first_line(exc)

    name = "cel-python/tp" if transpiled else "cel-python"
    return Engine(name, "cel-python", CEL_DIALECT, prepare, compile_, describe)


def zen_engine() -> Engine | None:
    """GoRules zen-engine's expression language (Rust VM); ``now`` passed as data."""
    zen = load("zen")
    if zen is None:
        return None

    def prepare(sample: Sample) -> dict[str, Any]:
        return {**plain_roots(sample), "now": sample.now.isoformat()}

    def compile_(source: str, sample: Sample) -> Evaluate:
        invalid = zen.validate_expression(source)
        if invalid:
            raise ValueError(f"{invalid['type']}: {invalid['source']}")
        expression = zen.compile_expression(source)
        return lambda context: expression.evaluate(context)

    return Engine("zen-engine", "zen-engine", ZEN_DIALECT, prepare, compile_)


# -- measuring ---------------------------------------------------------------------------


def micros(call: Callable[[], object]) -> float:
    """Median µs per call over REPEATS runs, each long enough to time reliably."""
    timer = timeit.Timer(call)
    number = 1
    while timer.timeit(number) < TARGET_SECONDS and number < 1_000_000:
        number *= 4
    return statistics.median(timer.repeat(repeat=REPEATS, number=number)) / number * 1e6


@dataclass
class Cell:
    """One engine on one condition."""

    compile_us: float | None = None
    eval_us: float | None = None
    correct: bool = False
    note: str = ""


def same(result: Any, expected: object) -> bool:
    """Equal to Kairos' answer, counting CEL's BoolType as a bool."""
    try:
        return bool(result == expected) and result is not None
    except Exception:
        return False


def measure(engine: Engine, samples: Mapping[str, Sample]) -> dict[str, Cell]:
    """Compile and evaluate every condition; errors become notes, not failures."""
    prepared = {name: engine.prepare(sample) for name, sample in samples.items()}
    cells: dict[str, Cell] = {}
    for condition in CONDITIONS:
        cell = cells[condition.key] = Cell()
        source = engine.dialect.get(condition.key)
        sample = samples[condition.event_type]
        if source is None:
            cell.note = "cannot express"
            continue
        try:
            evaluate = engine.compile(source, sample)
            cell.compile_us = micros(lambda s=source, e=sample: engine.compile(s, e))  # type: ignore[misc]
            data = prepared[condition.event_type]
            result = evaluate(data)
        except Exception as exc:
            cell.note = engine.describe_error(exc)
            continue
        cell.eval_us = micros(lambda f=evaluate, d=data: f(d))  # type: ignore[misc]
        cell.correct = same(result, condition.expected)
        if not cell.correct:
            cell.note = f"wrong: got {result!r}, want {condition.expected!r}"
    return cells


def diagnose(engine: Engine, samples: Mapping[str, Sample]) -> list[str]:
    """What the engine says about each broken rule: at compile time, or only when run."""
    lines = []
    for label, event_type, texts in BROKEN:
        source = texts["cel" if engine.dialect is CEL_DIALECT else "python"]
        sample = samples[event_type]
        try:
            evaluate = engine.compile(source, sample)
        except Exception as exc:
            lines.append(f"{label:<17} compile: {engine.describe_error(exc)}")
            continue
        try:
            outcome = f"evaluates to {evaluate(engine.prepare(sample))!r}"
        except Exception as exc:
            outcome = f"fails when run: {first_line(exc, 60)}"
        lines.append(f"{label:<17} accepted; {outcome}")
    return lines


def version(distribution: str) -> str:
    """The installed version of a distribution, or ``?``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# Facts that cannot be measured here; releases from PyPI as of 2026-11.
FACTS: dict[str, tuple[str, str, str]] = {
    # name: (latest release, runtime dependencies, what user text can reach)
    "kairos-ast": (
        "in repo",
        "none (stdlib ast; pydantic already used)",
        "schema-checked fields of the roots, a fixed function list; no loops",
    ),
    "simpleeval": (
        "1.0.8, 2026-09",
        "none",
        "any non-dunder attribute/method of passed objects; comprehensions",
    ),
    "cel-python": (
        "0.5.0, 2026-01",
        "lark, pendulum, google-re2, jmespath, pyyaml",
        "activation values and registered functions; non-Turing-complete",
    ),
    "cel-python/tp": (
        "0.5.0, 2026-01",
        "as cel-python",
        "as cel-python, but transpiled to Python source and exec()'d",
    ),
    "zen-engine": (
        "2.1.3, 2026-10",
        "none (25 MB native Rust wheel)",
        "context data and built-ins; no custom functions at all",
    ),
}


def main() -> None:
    """Measure every installed engine and print the tables."""
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"eval/compile: median of {REPEATS} timeit repeats, µs per call\n")
    samples = build_samples()
    loaders: list[tuple[str, Callable[[], Engine | None]]] = [
        ("kairos-ast", kairos_engine),
        ("simpleeval", simpleeval_engine),
        ("cel-python", lambda: cel_engine(transpiled=False)),
        ("cel-python/tp", lambda: cel_engine(transpiled=True)),
        ("zen-engine", zen_engine),
    ]
    engines: list[Engine] = []
    for name, loader in loaders:
        engine = loader()
        if engine is None:
            print(f"{name}: not installed, skipped")
        else:
            engines.append(engine)
    results = {engine.name: measure(engine, samples) for engine in engines}

    width = 14
    header = f"{'condition':<9} {'tests':<21}" + "".join(f"{e.name:>{width}}" for e in engines)
    print("\nEvaluation, µs per call (x = wrong answer or error, see notes)")
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for condition in CONDITIONS:
        row = f"{condition.key:<9} {condition.what:<21}"
        for engine in engines:
            cell = results[engine.name][condition.key]
            if cell.eval_us is not None and cell.correct:
                text = f"{cell.eval_us:.1f}"
            elif cell.eval_us is not None:
                text = f"{cell.eval_us:.1f} x"
            else:
                text = "x"
            if cell.note:
                notes.append(f"  {condition.key}/{engine.name}: {cell.note}")
            row += f"{text:>{width}}"
        print(row)

    print("\nPer engine")
    print(f"{'engine':<14} {'version':<8} {'right':>5} {'compile':>9} {'prepare':>9}")
    for engine in engines:
        cells = results[engine.name].values()
        right = sum(cell.correct for cell in cells)
        compiles = [cell.compile_us for cell in cells if cell.compile_us is not None]
        compile_text = f"{statistics.median(compiles):.0f}" if compiles else "-"
        prepare_us = micros(lambda e=engine: e.prepare(samples["transaction"]))  # type: ignore[misc]
        print(
            f"{engine.name:<14} {version(engine.distribution):<8} {right:>3}/{len(CONDITIONS)}"
            f" {compile_text:>9} {prepare_us:>9.1f}"
        )
    print("  right: answers equal to Kairos semantics; compile: median µs per condition;")
    print("  prepare: µs per event to turn the models into the engine's input (shared by rules)")

    print("\nNotes")
    print("\n".join(notes) if notes else "  none")

    print("\nBroken rules")
    for engine in engines:
        print(f"{engine.name}:")
        for line in diagnose(engine, samples):
            print(f"  {line}")

    print("\nFacts (latest release on PyPI; runtime dependencies; what rule text can reach)")
    for engine in engines:
        release, dependencies, reach = FACTS[engine.name]
        print(f"{engine.name:<14} {release:<15} {dependencies}\n{'':<30} {reach}")


if __name__ == "__main__":
    main()
