"""The backtest page's data: the folders of a backtest directory, and backtests run from it.

**Folders.** ``kairos backtest --out FOLDER`` writes ``report.json`` (a
:class:`~rules.offline.backtest.BacktestReport`, or with ``--compare`` a
:class:`~rules.offline.compare.BacktestDiff`), ``rules.csv``, ``daily.csv`` and ``chart.html``.
:class:`BacktestFolders` lists and opens such folders, but only those directly in the one
configured directory (``KAIROS_CONSOLE_BACKTEST_DIR``): a name is one path segment of
letters, digits, ``.``, ``_`` and ``-`` (no ``..``, no leading dot), and whatever it resolves
to — through any symbolic link — must still be a folder directly in that directory, as must
every file read from it. Anything else is refused before a byte is read, so neither a name
in a URL nor a path typed into the open form reaches any other file on the machine. The
charts are :mod:`app.backtest.chart`'s figures — the very ones ``chart.html`` draws —
serialised for plotly.js.

**Runs.** :class:`BacktestRuns` runs one on uploaded files: the upload is staged under
``.runs/<run id>/`` in the same directory (hidden from the listing), then
:mod:`app.console.backtest_job` runs in a process of its own and writes its result as a new
folder beside the others, with the same files ``--out`` writes, so it is opened like them.
Its progress is a file the job replaces a few times a second, so the progress endpoint
reads it from disk. One run at a time (a backtest keeps a core busy); the console stops its
runs when it stops.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from app.backtest.chart import Named, charts, figure_json, named_reports, partial_days
from app.console.backtest_job import (
    INPUTS,
    JOB_FILE,
    JobSpec,
    RunProgress,
    forget_inputs,
    read_progress,
    write_progress,
)
from rules.offline.backtest import BacktestReport
from rules.offline.compare import BacktestDiff

log = logging.getLogger(__name__)

#: A folder's name: one path segment, no leading dot (hidden: the runs' staging), no "..".
_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_RUN_ID = re.compile(r"^[0-9a-f]{16}$")
#: What ``kairos backtest --out`` writes, and the only files the console reads or serves.
REPORT = "report.json"
FILES = (
    "report.json",
    "rules.csv",
    "daily.csv",
    "chart.html",
    "rules-other.csv",
    "daily-other.csv",
)
#: report.json larger than this is not opened (a real one is kilobytes to a few megabytes).
MAX_REPORT_BYTES = 64 * 1024 * 1024
#: The folders listed at most, newest first.
MAX_LISTED = 500
#: Staged runs older than this are removed when the console starts.
STALE_RUN_S = 24 * 3600.0
RUNS = ".runs"

Kind = Literal["report", "comparison"]


class BacktestFolderError(Exception):
    """A folder that may not be opened (``status`` 400) or is not there (404)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FolderSummary:
    """One folder as the list shows it."""

    name: str
    modified: datetime
    kind: Kind | None = None
    rulesets: tuple[str, ...] = ()
    events: int | None = None
    contacts: tuple[int, ...] = ()
    customers_reached: tuple[int, ...] = ()
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    problem: str | None = None


@dataclass(frozen=True)
class OpenedBacktest:
    """A folder's report, read and checked, with the files beside it."""

    name: str
    modified: datetime
    report: BacktestReport
    diff: BacktestDiff | None
    files: tuple[str, ...]

    @property
    def kind(self) -> Kind:
        return "comparison" if self.diff is not None else "report"

    @property
    def reports(self) -> list[Named]:
        """The rulesets' reports, named as their charts name them."""
        return named_reports(self.report, self.diff)

    @property
    def partial_days(self) -> list[str]:
        """The local dates the events cover only in part (drawn paler, marked partial)."""
        days = sorted({day for _, report in self.reports for day in report.contacts_per_day})
        return sorted(partial_days(days, self.report.inputs))


def _inside(folder: Path, file_name: str) -> Path | None:
    """``folder/file_name`` if it is a file in that very folder, links followed; else None."""
    path = (folder / file_name).resolve()
    return path if path.parent == folder and path.is_file() else None


def _stamp(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


class BacktestFolders:
    """The backtest folders directly in ``root``; nothing outside it is ever read."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock = threading.Lock()
        self._reports: OrderedDict[str, tuple[tuple[int, int], OpenedBacktest]] = OrderedDict()
        self._charts: OrderedDict[str, tuple[tuple[int, int], list[dict[str, Any]]]] = OrderedDict()

    # ------------------------------------------------------------------ names and paths

    def folder(self, name: str) -> Path:
        """The folder called ``name`` directly in the root, checked.

        Raises:
            BacktestFolderError: not a plain name (400), or no such folder there (404).

        """
        if not _NAME.match(name):
            raise BacktestFolderError(
                "A backtest folder is named by one word of letters, digits, '.', '_' and '-' "
                "(no '/', no '..', not starting with a dot).",
                400,
            )
        path = (self.root / name).resolve()
        if path.parent != self.root:  # a link leading elsewhere
            raise BacktestFolderError(f"{name} is not a folder of the backtest directory.", 400)
        if not path.is_dir():
            raise BacktestFolderError(f"There is no backtest folder called {name}.")
        return path

    def name_of(self, given: str) -> str:
        """The folder a name or a path typed into the open form means, checked.

        A path (absolute, or relative to the backtest directory) must lead to a folder
        directly in the directory, links followed.

        Raises:
            BacktestFolderError: it leads anywhere else (400), or nowhere (404).

        """
        given = given.strip()
        if "/" not in given and "\\" not in given:
            return self.folder(given).name
        path = Path(given)
        try:
            resolved = (path if path.is_absolute() else self.root / path).resolve()
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            raise BacktestFolderError("That is not a path this console can open.", 400) from None
        if resolved.parent != self.root:
            raise BacktestFolderError(
                f"Only folders directly in the backtest directory ({self.root}) can be opened.",
                400,
            )
        return self.folder(resolved.name).name

    def file(self, name: str, file_name: str) -> Path:
        """One of the files ``--out`` writes, in folder ``name``, checked.

        Raises:
            BacktestFolderError: not one of those files (400), or not there (404).

        """
        if file_name not in FILES:
            raise BacktestFolderError(f"The console serves only {', '.join(FILES)}.", 400)
        folder = self.folder(name)
        path = _inside(folder, file_name)
        if path is None:
            raise BacktestFolderError(f"{name} has no {file_name}.")
        return path

    # ------------------------------------------------------------------ listing, opening

    def listing(self) -> list[FolderSummary]:
        """Every folder of the directory with a report.json, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if not _NAME.match(entry.name):
                continue
            try:
                folder = self.folder(entry.name)
            except BacktestFolderError:
                continue
            if not (folder / REPORT).is_file():
                continue
            found.append((_stamp(folder / REPORT), entry.name))
        found.sort(reverse=True)
        return [self._summary(name, modified) for modified, name in found[:MAX_LISTED]]

    def _summary(self, name: str, modified: datetime) -> FolderSummary:
        try:
            opened = self.open(name)
        except BacktestFolderError as exc:
            return FolderSummary(name, modified, problem=str(exc))
        reports = [report for _, report in opened.reports]
        inputs = opened.report.inputs
        return FolderSummary(
            name=name,
            modified=modified,
            kind=opened.kind,
            rulesets=tuple(report.ruleset_version for report in reports),
            events=inputs.events,
            contacts=tuple(sum(report.contacts_by_channel.values()) for report in reports),
            customers_reached=tuple(report.customers_reached for report in reports),
            first_event_at=inputs.first_event_at,
            last_event_at=inputs.last_event_at,
        )

    def open(self, name: str) -> OpenedBacktest:
        """The folder's report, read once per change of its report.json.

        Raises:
            BacktestFolderError: no such folder, or its report.json is missing, too large
                or not a backtest report.

        """
        folder = self.folder(name)
        path = self.file(name, REPORT)
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._reports.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        if stat.st_size > MAX_REPORT_BYTES:
            raise BacktestFolderError(
                f"{name}/report.json is {stat.st_size:,} bytes: more than the console opens "
                f"({MAX_REPORT_BYTES:,}).",
                400,
            )
        opened = OpenedBacktest(
            name=name,
            modified=_stamp(path),
            files=tuple(f for f in FILES if _inside(folder, f) is not None),
            **_read_report(name, path.read_bytes()),
        )
        with self._lock:
            self._reports[name] = (key, opened)
            self._reports.move_to_end(name)
            while len(self._reports) > 64:
                self._reports.popitem(last=False)
        return opened

    def chart_json(self, name: str) -> tuple[OpenedBacktest, list[dict[str, Any]]]:
        """The folder's charts as plotly.js draws them (built once per report.json)."""
        opened = self.open(name)
        stat = (self.folder(name) / REPORT).stat()
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._charts.get(name)
        if cached is not None and cached[0] == key:
            return opened, cached[1]
        drawn = [figure_json(chart) for chart in charts(opened.reports).all()]
        with self._lock:
            self._charts[name] = (key, drawn)
            self._charts.move_to_end(name)
            while len(self._charts) > 16:
                self._charts.popitem(last=False)
        return opened, drawn


def _read_report(name: str, raw: bytes) -> dict[str, Any]:
    """``report`` and ``diff`` from a report.json: a report, or a comparison's diff."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise BacktestFolderError(f"{name}/report.json is not JSON.", 400) from None
    try:
        if isinstance(document, dict) and "base" in document and "other" in document:
            diff = BacktestDiff.model_validate(document)
            return {"report": diff.base, "diff": diff}
        return {"report": BacktestReport.model_validate(document), "diff": None}
    except ValidationError as exc:
        raise BacktestFolderError(
            f"{name}/report.json is not a report of kairos backtest "
            f"({exc.error_count()} problem(s), e.g. {exc.errors()[0]['msg']}).",
            400,
        ) from None


# --------------------------------------------------------------------------- runs


class RunRefusedError(Exception):
    """A run that cannot start now (``status``: 409 busy, 413 too large, 400 bad form)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Run:
    """One run the console started: its spec, its process, and how far it is."""

    spec: JobSpec
    folder: Path
    started_at: datetime
    rules_label: str
    compare_label: str | None
    upload: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    progress: RunProgress = field(default_factory=RunProgress)

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def view(self) -> dict[str, Any]:
        """What the progress endpoint answers."""
        progress = self.progress
        return {
            "run_id": self.run_id,
            "state": progress.state,
            "percent": progress.percent,
            "events": progress.events,
            "fraction": progress.fraction,
            "folder": progress.folder,
            "url": f"/backtests/{progress.folder}" if progress.folder else None,
            "error": progress.error,
            "who": self.spec.who,
            "started_at": self.started_at.isoformat(),
            "rules": self.rules_label,
            "compare": self.compare_label,
            "upload_bytes": sum(self.upload.values()),
        }


class BacktestRuns:
    """Backtests run on uploads, one at a time, each in a ``backtest_job`` process."""

    def __init__(
        self,
        root: Path,
        max_upload_bytes: int,
        python: str = sys.executable,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.root = root.resolve()
        self.staging = self.root / RUNS
        self.max_upload_bytes = max_upload_bytes
        self.python = python
        self.clock = clock
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Make the directories; remove runs a console left behind over a day ago."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for entry in self.staging.iterdir():
            try:
                stale = time.time() - entry.stat().st_mtime > STALE_RUN_S
            except OSError:
                continue
            if stale and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)

    @property
    def running(self) -> Run | None:
        """The run still going, if any."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if not self.refresh(run).progress.ended:
                return run
        return None

    def stage(self) -> tuple[str, Path]:
        """A new run's id and its empty staging folder (``inputs/`` made)."""
        run_id = secrets.token_hex(8)
        folder = self.staging / run_id
        (folder / INPUTS).mkdir(parents=True)
        return run_id, folder

    def discard(self, folder: Path) -> None:
        """Remove a staged run that never started (a refused or broken upload)."""
        if folder.parent == self.staging:
            shutil.rmtree(folder, ignore_errors=True)

    def folder_name(self, versions: list[str]) -> str:
        """A new result folder's name: when and which rulesets, unique in the directory."""
        stem = f"console-{self.clock():%Y%m%d-%H%M%S}-" + "-vs-".join(versions)
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:180]
        name, n = stem, 1
        while (self.root / name).exists():
            n += 1
            name = f"{stem}-{n}"
        return name

    def start(self, run: Run) -> Run:
        """Write the job and start its process.

        Raises:
            RunRefusedError: another run is going (409).

        """
        with self._lock:
            if any(
                other.process is not None and other.process.poll() is None
                for other in self._runs.values()
            ):
                raise RunRefusedError("A backtest is running already: one at a time.", 409)
            (run.folder / JOB_FILE).write_text(run.spec.model_dump_json(), encoding="utf-8")
            write_progress(run.folder, run.progress)
            with (run.folder / "job.log").open("wb") as job_log:
                run.process = subprocess.Popen(
                    [self.python, "-m", "app.console.backtest_job", str(run.folder)],
                    stdin=subprocess.DEVNULL,
                    stdout=job_log,
                    stderr=job_log,
                    # where ``app`` is importable from, installed or not
                    cwd=Path(__file__).resolve().parent.parent.parent,
                )
            self._runs[run.run_id] = run
            while len(self._runs) > 100:  # the oldest runs' views; their folders stay
                oldest = next(iter(self._runs.values()))
                if not oldest.progress.ended:
                    break
                self._runs.popitem(last=False)
        log.info(
            "Backtest run %s started by %s (pid %d)", run.run_id, run.spec.who, run.process.pid
        )
        return run

    def get(self, run_id: str) -> Run | None:
        """A run by id, its progress read afresh."""
        if not _RUN_ID.match(run_id):
            return None
        with self._lock:
            run = self._runs.get(run_id)
        return self.refresh(run) if run is not None else None

    def refresh(self, run: Run) -> Run:
        """Read the run's progress; once its process has ended, settle how it ended."""
        if run.progress.ended and (run.process is None or run.process.poll() is not None):
            return run
        written = read_progress(run.folder)
        if written is not None:
            run.progress = written
        process = run.process
        if process is None or process.poll() is None:
            return run
        if not run.progress.ended:  # it died without saying why
            run.progress = RunProgress(
                state="failed",
                events=run.progress.events,
                error=f"the backtest process stopped (exit code {process.returncode}); "
                f"its log is {run.folder / 'job.log'}",
            )
            write_progress(run.folder, run.progress)
        elif run.progress.state == "done" and not (
            run.progress.folder and (self.root / run.progress.folder).is_dir()
        ):
            run.progress = RunProgress(state="failed", error="the result folder is missing")
        forget_inputs(run.folder)
        return run

    def close(self, grace_s: float = 5.0) -> None:
        """Stop the runs still going (by their process), and forget their inputs."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            process = run.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=grace_s)
            self.refresh(run)
            forget_inputs(run.folder)


@dataclass
class Backtests:
    """The backtest page's folders and runs, over one directory."""

    folders: BacktestFolders
    runs: BacktestRuns
    #: The rule files workers run while nothing is deployed (KAIROS_RULES_PATH), if here.
    bootstrap_rules: Path | None = None

    @classmethod
    def at(
        cls,
        root: Path,
        max_upload_bytes: int,
        bootstrap_rules: Path | None = None,
        python: str = sys.executable,
    ) -> Backtests:
        """The backtests of ``root`` (made if missing)."""
        runs = BacktestRuns(root, max_upload_bytes, python=python)
        runs.prepare()
        return cls(BacktestFolders(root), runs, bootstrap_rules)

    @property
    def root(self) -> Path:
        return self.folders.root

    def close(self) -> None:
        self.runs.close()
