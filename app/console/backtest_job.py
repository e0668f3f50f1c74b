"""One backtest the console started, run in a process of its own: ``python -m`` this module.

The console's backtest page stages an upload in ``<backtest dir>/.runs/<run id>/`` — the
inputs under ``inputs/`` and :class:`JobSpec` as ``job.json`` — and starts this module on
that folder (:class:`app.console.backtests.BacktestRuns`). A process rather than a thread:
a month of events keeps a core busy for minutes and can take gigabytes, which must neither
slow the console's pages (they share nothing with it but files) nor stay in its memory.

It runs :func:`app.backtest.run.run_backtest` on the inputs against the chosen rulesets —
deployed bundles compiled as a worker compiles them (:func:`rules.deployments.compile_bundle`),
or the bootstrap rule files — and writes what ``kairos backtest --out`` writes
(:func:`app.backtest.output.write_report_files`) into ``out/``, renamed at the end to its
folder in the backtest directory, so a half-written folder is never listed. Its progress is
``progress.json`` (:class:`RunProgress`), replaced atomically a few times a second, which the
console's progress endpoint reads. The inputs (customer data) are deleted when it ends,
however it ends; the launching console deletes them too if the process is killed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.deployment import RulesetBundle

if TYPE_CHECKING:
    from rules.ruleset import Ruleset

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.json"
INPUTS = "inputs"
OUT = "out"
#: The least time between two writes of progress.json.
PROGRESS_EVERY_S = 0.25

RunState = Literal["queued", "reading", "replaying", "writing", "done", "failed"]


class RulesChoice(BaseModel):
    """A ruleset to run: a deployed bundle, or rule files (the workers' bootstrap rules)."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description="As the page names it: 'live', a version, 'bootstrap'.")
    version: str = Field(description="Its content version, e.g. 'rs-abc123def456'.")
    bundle: RulesetBundle | None = None
    path: str | None = None


class JobSpec(BaseModel):
    """What to run: ``job.json`` in the run's folder."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    rules: RulesChoice
    compare: RulesChoice | None = None
    events: str = Field(description="The events file's name in inputs/.")
    profiles: str | None = Field(default=None, description="The profiles file's, if any.")
    folder: str = Field(description="The result's folder name in the backtest directory.")
    who: str = ""
    seed: int = 7


class RunProgress(BaseModel):
    """How far a run is: ``progress.json``, what the console's progress endpoint reads."""

    state: RunState = "queued"
    events: int = Field(default=0, description="Events replayed so far.")
    fraction: float = Field(default=0.0, description="Of the events file's bytes read.")
    folder: str | None = Field(default=None, description="The result's folder, once done.")
    error: str | None = None
    updated_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def percent(self) -> int:
        """100 only once the folder is written; the replay counts up to 99."""
        if self.state == "done":
            return 100
        if self.state == "writing":
            return 99
        return min(99, int(self.fraction * 100)) if self.state == "replaying" else 0


def write_progress(folder: Path, progress: RunProgress) -> None:
    """Replace ``progress.json`` in one step: a reader sees the old one or the new one."""
    partial = folder / f".{PROGRESS_FILE}.tmp"
    partial.write_text(progress.model_dump_json(), encoding="utf-8")
    os.replace(partial, folder / PROGRESS_FILE)


def read_progress(folder: Path) -> RunProgress | None:
    """The run's last written progress; None before the first or when unreadable."""
    try:
        return RunProgress.model_validate_json((folder / PROGRESS_FILE).read_bytes())
    except (OSError, ValueError):
        return None


def forget_inputs(folder: Path) -> None:
    """Delete the uploaded inputs and any half-written output: customer data is not kept."""
    for name in (INPUTS, OUT):
        shutil.rmtree(folder / name, ignore_errors=True)


class _Reporter:
    """Writes the replay's progress at most every :data:`PROGRESS_EVERY_S` seconds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._last = 0.0

    def state(self, state: RunState, **fields: object) -> None:
        write_progress(self.folder, RunProgress.model_validate({"state": state, **fields}))
        self._last = time.monotonic()

    def replaying(self, events: int, fraction: float) -> None:
        if events and time.monotonic() - self._last < PROGRESS_EVERY_S:
            return
        self.state("replaying", events=events, fraction=min(max(fraction, 0.0), 1.0))


def _ruleset(choice: RulesChoice) -> Ruleset:
    from rules.deployments import compile_bundle
    from rules.language.loader import load_ruleset

    if choice.bundle is not None:
        return compile_bundle(choice.bundle)
    if choice.path is not None:
        return load_ruleset(Path(choice.path))
    raise ValueError(f"{choice.label}: neither a bundle nor a path")


def run_job(folder: Path) -> int:
    """Run the job staged in ``folder``; 0 once its result folder is written, else 1."""
    from app.backtest.output import write_report_files
    from app.backtest.run import BacktestInputError, run_backtest
    from rules.errors import RuleFileError
    from rules.offline.compare import compare

    reporter = _Reporter(folder)
    try:
        spec = JobSpec.model_validate_json((folder / JOB_FILE).read_bytes())
        reporter.state("reading")
        base = _ruleset(spec.rules)
        other = _ruleset(spec.compare) if spec.compare is not None else None
        inputs = folder / INPUTS
        run = run_backtest(
            base,
            [inputs / spec.events],
            profiles=inputs / spec.profiles if spec.profiles else None,
            compare=other,
            progress=False,
            on_progress=reporter.replaying,
        )
        reporter.state("writing", events=run.events, fraction=1.0)
        report = run.base.report()
        diff = compare(run.base, run.other) if run.other is not None else None
        out = folder / OUT
        write_report_files(out, report, diff)
        target = folder.parent.parent / spec.folder
        if target.exists():
            raise FileExistsError(f"{spec.folder} exists already in the backtest folder")
        os.rename(out, target)
        reporter.state("done", events=run.events, fraction=1.0, folder=spec.folder)
        return 0
    except RuleFileError as exc:
        problems = "; ".join(str(problem) for problem in exc.problems[:5])
        reporter.state("failed", error=f"the ruleset does not compile: {problems}")
    except BacktestInputError as exc:
        reporter.state("failed", error=str(exc))
    except Exception as exc:  # the page says what went wrong; the log has the traceback
        log.exception("The backtest in %s failed", folder)
        reporter.state("failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        forget_inputs(folder)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m app.console.backtest_job RUN_FOLDER", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_job(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
