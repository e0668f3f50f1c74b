"""``kairos backtest``: recorded events through the live engine, offline, with a report.

Two sources. Files: what ``kairos generate --out`` writes (or any JSONL of input events,
``.gz`` too) — profiles first, then events in file order, the order they reached the
broker, late arrivals and re-deliveries included, which is what the worker would have
seen. Or the live input topics over a time range, profiles and events merged in the order
the broker stamped them. Records the worker would dead-letter are counted by the same
reason codes, not fatal: a month of real traffic always holds a few.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, TypeVar

from pydantic import ValidationError

from app.progress import Progress
from rules.engine import EngineOptions
from rules.language.loader import load_ruleset
from rules.language.yaml_reader import plain_yaml, read_document
from rules.offline.backtest import Backtest
from rules.offline.responses import ResponseModel, ResponseRates, estimate
from rules.ruleset import Ruleset
from schemas.codec import decode_event, decode_feedback, decode_profile
from schemas.errors import InvalidEventError, KairosError
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile


class BacktestInputError(KairosError):
    """An input file is missing or unreadable (bad lines inside are counted, not raised)."""


Kind = Literal["profile", "event", "feedback"]
_Keyed = TypeVar("_Keyed", CustomerProfile, Feedback)


@dataclass(frozen=True)
class Line:
    path: Path
    number: int
    raw: bytes


class BacktestSource(Protocol):
    """Input records in the order the worker would have consumed them."""

    def records(self) -> Iterator[tuple[Kind, bytes]]: ...

    def recorded_feedback(self) -> Iterator[bytes]:
        """The recorded channel reports among the records, read ahead of the replay.

        The simulated channels must not answer an action that a recorded report answers
        later in the inputs (and the rates may be estimated from these reports).
        """
        ...

    @property
    def fraction_read(self) -> float: ...


class JsonlFiles:
    """Lines of JSONL files in order, with how far through the bytes we are (for progress)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise BacktestInputError(f"no such input file(s): {', '.join(missing)}")
        self.paths = list(paths)
        self.total_bytes = sum(p.stat().st_size for p in self.paths)
        self._done_bytes = 0
        self._current: IO[bytes] | None = None

    @property
    def fraction_read(self) -> float:
        position = self._current.tell() if self._current and not self._current.closed else 0
        return (self._done_bytes + position) / max(self.total_bytes, 1)

    def lines(self) -> Iterator[Line]:
        for path in self.paths:
            with path.open("rb") as raw:
                self._current = raw
                # progress follows the compressed bytes: the only size known up front
                text: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
                for number, line in enumerate(text, start=1):
                    if line.strip():
                        yield Line(path, number, line)
            self._done_bytes += path.stat().st_size
            self._current = None


class FileSource:
    """A profiles file (optional), then event files in the order given."""

    def __init__(self, events: Sequence[Path], profiles: Path | None = None) -> None:
        self.profiles = JsonlFiles([profiles] if profiles else [])
        self.events = JsonlFiles(events)

    @property
    def fraction_read(self) -> float:
        return self.events.fraction_read

    def records(self) -> Iterator[tuple[Kind, bytes]]:
        """Profiles first, then the events in file order.

        Recorded channel feedback may be interleaved in the event files where it arrived
        (a line with a ``feedback_id``).
        """
        for line in self.profiles.lines():
            yield "profile", line.raw
        for line in self.events.lines():
            yield ("feedback" if _FEEDBACK_MARK in line.raw else "event"), line.raw

    def recorded_feedback(self) -> Iterator[bytes]:
        """One pass over the event files for the feedback lines (a substring test per line)."""
        for line in JsonlFiles(self.events.paths).lines():
            if _FEEDBACK_MARK in line.raw:
                yield line.raw


_FEEDBACK_MARK = b'"feedback_id"'


@dataclass
class BacktestRun:
    """The finished backtests (the base, and the ``--compare`` one) and how long they took."""

    base: Backtest
    other: Backtest | None
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Responses:
    """How the backtest hears back from the channels.

    ``simulate``: recorded reports are replayed where they answer a recorded action, and the
    seeded model answers every other contact; ``recorded``: only the recorded reports.
    ``rates``: a YAML or JSON file of :class:`~rules.offline.responses.ResponseRates`, or
    ``"estimate"`` to estimate them from the recorded reports; the defaults otherwise.
    """

    mode: Literal["simulate", "recorded"] = "simulate"
    rates: Path | Literal["estimate"] | None = None
    seed: int = 7


def _response_model(responses: Responses, recorded: list[Feedback]) -> ResponseModel | None:
    if responses.mode == "recorded":
        return None
    if responses.rates == "estimate":
        if not recorded:
            raise BacktestInputError(
                "--response-rates estimate needs recorded feedback in the inputs (lines with a "
                "feedback_id, or the feedback topic with --from-kafka); there is none"
            )
        return ResponseModel(estimate(recorded), responses.seed)
    if responses.rates is None:
        return ResponseModel(seed=responses.seed)
    return ResponseModel(read_rates(responses.rates), responses.seed)


def read_rates(path: Path) -> ResponseRates:
    """Response rates from a YAML or JSON file, or a clear error naming the file.

    Read with the rule files' bounded YAML reader: a rates file gets the same limits (size,
    nesting, aliases) as any YAML Kairos reads.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BacktestInputError(f"cannot read response rates {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BacktestInputError(f"{path}: not valid response rates: not UTF-8 text") from None
    document, problem = read_document(str(path), text)
    if problem is not None:
        raise BacktestInputError(f"not valid response rates: {problem}")
    document = plain_yaml(document)
    if document is not None and not isinstance(document, dict):
        raise BacktestInputError(f"{path}: not valid response rates: expected a mapping")
    try:
        return ResponseRates.model_validate({**(document or {}), "source": str(path)})
    except ValidationError as exc:
        raise BacktestInputError(f"{path}: not valid response rates: {exc}") from None


def _recorded(source: BacktestSource) -> list[Feedback]:
    recorded = []
    for raw in source.recorded_feedback():
        try:
            recorded.append(decode_feedback(raw))
        except InvalidEventError:
            continue  # counted as rejected when the replay meets it
    return recorded


def run_backtest(
    rules: Path | Ruleset,
    events: Sequence[Path] | BacktestSource,
    profiles: Path | None = None,
    policy: Path | None = None,
    compare: Path | Ruleset | None = None,
    progress: bool | None = None,
    keep_actions: bool = False,
    responses: Responses = Responses(),
    options: EngineOptions | None = None,
    on_progress: Callable[[int, float], None] | None = None,
) -> BacktestRun:
    """Replay the inputs through ``rules`` (and ``compare``, side by side, parsed once).

    ``rules`` and ``compare`` are rule files (a directory or a file) or a compiled ruleset (a
    deployed version, :func:`rules.deployments.compile_bundle`); ``policy`` replaces the
    policy of rule files only. ``events`` is a list of JSONL files (with ``profiles``, read
    first) or any source; ``responses`` says how the channels answer the contacts (see
    :class:`Responses`); ``options``, the engine's tolerances (a worker's timer grace,
    allowed lateness), when the worker to compare with does not run on the defaults.
    ``on_progress(events, fraction)`` is called as the replay starts (0 events) and then
    every few thousand events, with the fraction of the input read when it is known (the
    console's progress bar; the terminal's is ``progress``).

    Raises:
        RuleFileError: a ruleset or the policy file does not compile.
        BacktestInputError: an input file is missing, or the response rates are wrong.
        ValueError: a policy file given with a compiled ruleset.

    """
    if policy is not None and any(isinstance(r, Ruleset) for r in (rules, compare)):
        raise ValueError("a policy file replaces the policy of rule files, not of a ruleset")
    source = FileSource(events, profiles) if isinstance(events, Sequence) else events
    # only the simulated channels need the recorded reports ahead (which actions they answer)
    recorded = _recorded(source) if responses.mode == "simulate" else []
    model = _response_model(responses, recorded)
    answered = frozenset(report.action_id for report in recorded)
    backtests = [
        Backtest(
            given if isinstance(given, Ruleset) else load_ruleset(given, policy=policy),
            options or EngineOptions(),
            model,
            answered,
        )
        for given in (rules, *([compare] if compare is not None else []))
    ]
    for backtest in backtests:
        backtest.keep_actions = keep_actions
    bar = Progress("backtest", "events", sized=True, enabled=progress)
    started = time.perf_counter()
    count = 0
    if on_progress is not None:
        on_progress(0, 0.0)
    for kind, raw in source.records():
        if kind == "profile":
            _feed_profile(backtests, raw)
            continue
        if kind == "feedback":
            _feed_feedback(backtests, raw)
            continue
        count += 1
        if count % 4096 == 0:
            bar.update(count, source.fraction_read)
            if on_progress is not None:
                on_progress(count, source.fraction_read)
        try:
            event = decode_event(raw)
        except InvalidEventError as exc:
            for backtest in backtests:
                backtest.reject(exc.error_type)
            continue
        for backtest in backtests:
            backtest.event(event)
    bar.close(count)
    seconds = time.perf_counter() - started
    return BacktestRun(
        base=backtests[0],
        other=backtests[1] if len(backtests) > 1 else None,
        events=count,
        seconds=seconds,
    )


def _feed_feedback(backtests: list[Backtest], raw: bytes) -> None:
    _feed(backtests, raw, decode_feedback, Backtest.feedback, "feedback_")


def _feed_profile(backtests: list[Backtest], raw: bytes) -> None:
    _feed(backtests, raw, decode_profile, Backtest.profile, "profile_")


def _feed(
    backtests: list[Backtest],
    raw: bytes,
    decode: Callable[[bytes], _Keyed],
    apply: Callable[[Backtest, _Keyed], None],
    prefix: str,
) -> None:
    """Decode one line once and hand it to every backtest; count it if the worker would not."""
    try:
        item = decode(raw)
    except InvalidEventError as exc:
        for backtest in backtests:
            backtest.reject(f"{prefix}{exc.error_type}")
        return
    for backtest in backtests:
        apply(backtest, item)
