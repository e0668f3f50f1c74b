"""The backtest page: open a ``kairos backtest --out`` folder, or run one on an upload.

* ``GET /backtests`` lists the folders of the backtest directory (``?folder=`` opens one by
  name or path, refused unless it is directly in that directory), and holds the form that
  runs a backtest on an uploaded events file (and profiles) against the live ruleset or any
  stored version, optionally compared with another.
* ``GET /backtests/{name}`` shows a folder's report — inputs, each ruleset's figures and
  rules, and with a comparison the difference rule by rule — and its charts, which
  ``static/backtests.js`` draws from ``GET /api/backtests/{name}``: the very Plotly figures
  of ``chart.html`` (:mod:`app.backtest.chart`), as JSON.
* ``POST /backtests/runs`` streams the upload to disk within ``max_upload_bytes`` (413
  past it), checks the chosen versions compile with this Kairos as the workers would, and
  starts the run (:class:`app.console.backtests.BacktestRuns`); ``GET /backtests/runs/{id}``
  shows its progress bar, fed by ``GET /api/backtests/runs/{id}``, and opens the result
  folder when it is written.

The reports hold counts per rule, channel, day and hour — no customer — and the uploaded
inputs are deleted once the run ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from app.console.backtest_job import INPUTS, JobSpec, RulesChoice
from app.console.backtests import (
    BacktestFolderError,
    Backtests,
    OpenedBacktest,
    Run,
    RunRefusedError,
)
from app.console.web import CONSOLE, UPLOAD, Console, render, session_of
from rules.deployments import Registry
from rules.errors import DeploymentError, RuleFileError
from schemas.actions import Channel

#: Room for the form's other fields and the multipart framing around the files.
_FORM_SLACK = 64 * 1024
_CHUNK = 256 * 1024
_MAX_FIELD = 256
_GZIP_MAGIC = b"\x1f\x8b"
_CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".html": "text/html"}
LIVE = "live"
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Choice:
    """A ruleset the run form offers."""

    value: str
    label: str


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _problem(request: web.Request, title: str, message: str, status: int) -> web.Response:
    return render(request, "problem.html", {"title": title, "message": message}, status=status)


def _json(body: Any, status: int = 200) -> web.Response:
    import json

    return web.json_response(
        body, status=status, dumps=lambda v: json.dumps(v, default=str, separators=(",", ":"))
    )


def _backtests(request: web.Request) -> Backtests:
    backtests = _console(request).backtests
    if backtests is None:
        raise web.HTTPNotFound(text="The backtest page is not configured on this console.")
    return backtests


# --------------------------------------------------------------------------- the list


async def _registry(console: Console) -> tuple[Registry | None, str | None]:
    try:
        return await console.rules.read(), None
    except DeploymentError as exc:
        return None, f"The rules topic cannot be read, so no ruleset can be chosen: {exc}"


def _choices(registry: Registry | None, backtests: Backtests) -> list[Choice]:
    """What the run form offers: the live version, every stored one, else the bootstrap."""
    choices = []
    if registry is not None and registry.live:
        choices.append(Choice(LIVE, f"live — {registry.live}"))
    if registry is not None:
        stored = sorted(registry.bundles.values(), key=lambda b: b.deployed_at, reverse=True)
        choices += [
            Choice(
                b.version,
                f"{b.version} — deployed {b.deployed_at:%Y-%m-%d %H:%M} by "
                f"{b.deployed_by}{': ' + b.comment if b.comment else ''}",
            )
            for b in stored
        ]
    if (registry is None or not registry.live) and backtests.bootstrap_rules is not None:
        choices.append(
            Choice(
                BOOTSTRAP,
                "bootstrap rules (KAIROS_RULES_PATH): what workers run while nothing is deployed",
            )
        )
    return choices


async def backtests(request: web.Request) -> web.Response:
    """The folders of the backtest directory, the open form and the run form."""
    console = _console(request)
    found = _backtests(request)
    open_error, status = "", 200
    given = request.query.get("folder")
    if given is not None:
        try:
            name = await asyncio.to_thread(found.folders.name_of, given)
        except BacktestFolderError as exc:
            open_error, status = str(exc), exc.status
        else:
            raise web.HTTPSeeOther(f"/backtests/{name}")
    folders = await asyncio.to_thread(found.folders.listing)
    registry, registry_problem = await _registry(console)
    choices = _choices(registry, found)
    running = await asyncio.to_thread(lambda: found.runs.running)
    run_problem = registry_problem if not choices else None
    if not choices and run_problem is None:
        run_problem = "No ruleset to run: nothing is deployed and no rule files are configured."
    return render(
        request,
        "backtests.html",
        {
            "root": str(found.root),
            "folders": folders,
            "open_error": open_error,
            "given": given or "",
            "choices": choices,
            "run_problem": run_problem,
            "running": running.view() if running else None,
            "max_bytes": found.runs.max_upload_bytes,
            "max_mb": found.runs.max_upload_bytes / 2**20,
        },
        status=status,
    )


async def api_backtests(request: web.Request) -> web.Response:
    """``{"folders": [...], "running": run or null}``."""
    found = _backtests(request)
    folders = await asyncio.to_thread(found.folders.listing)
    running = await asyncio.to_thread(lambda: found.runs.running)
    return _json(
        {
            "folders": [asdict(folder) for folder in folders],
            "running": running.view() if running else None,
        }
    )


# --------------------------------------------------------------------------- one folder


async def _open(request: web.Request) -> OpenedBacktest | web.Response:
    found = _backtests(request)
    name = request.match_info["name"]
    try:
        return await asyncio.to_thread(found.folders.open, name)
    except BacktestFolderError as exc:
        return _problem(request, "Backtest not opened", str(exc), exc.status)


def _ruleset_view(index: int, label: str, opened: OpenedBacktest) -> dict[str, Any]:
    report = opened.reports[index][1]
    rules = report.rules
    return {
        "index": index,
        "label": label,
        "report": report,
        "version": report.ruleset_version,
        "contacts": sum(report.contacts_by_channel.values()),
        "by_channel": report.contacts_by_channel,
        "customers_reached": report.customers_reached,
        "fires": sum(r.fires for r in rules),
        "suppressed": sum(r.suppressed for r in rules),
        "held_out": sum(r.held_out for r in rules),
        "deferred": sum(r.deferred for r in rules),
        "rules": rules,
    }


async def backtest(request: web.Request) -> web.Response:
    """One folder: its report and, drawn by the page's script, its charts."""
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    rulesets = [
        _ruleset_view(index, label, opened) for index, (label, _) in enumerate(opened.reports)
    ]
    return render(
        request,
        "backtest.html",
        {
            "opened": opened,
            "inputs": opened.report.inputs,
            "rulesets": rulesets,
            "diff": opened.diff,
            "channels": [channel.value for channel in Channel],
            "partial": opened.partial_days,
        },
    )


async def api_backtest(request: web.Request) -> web.Response:
    """The folder's charts as plotly.js draws them: ``{"charts": [{id, kind, data, layout}]}``."""
    found = _backtests(request)
    name = request.match_info["name"]
    try:
        opened, drawn = await asyncio.to_thread(found.folders.chart_json, name)
    except BacktestFolderError as exc:
        return _json({"error": str(exc)}, status=exc.status)
    return _json(
        {
            "name": opened.name,
            "kind": opened.kind,
            "rulesets": [report.ruleset_version for _, report in opened.reports],
            "partial_days": opened.partial_days,
            "charts": drawn,
        }
    )


async def backtest_file(request: web.Request) -> web.StreamResponse:
    """One of the folder's files, as a download (never shown in the console's origin)."""
    found = _backtests(request)
    name, file_name = request.match_info["name"], request.match_info["file"]
    try:
        path = await asyncio.to_thread(found.folders.file, name, file_name)
    except BacktestFolderError as exc:
        return _problem(request, "No such file", str(exc), exc.status)
    response = web.FileResponse(path)
    response.content_type = _CONTENT_TYPES.get(Path(file_name).suffix, "application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{file_name}"'
    return response


# --------------------------------------------------------------------------- runs


async def _field(part: BodyPartReader) -> str:
    """A short form field, read within :data:`_MAX_FIELD` bytes."""
    value = b""
    while chunk := await part.read_chunk(_MAX_FIELD):
        value += chunk
        if len(value) > _MAX_FIELD:
            raise RunRefusedError(f"The form's {part.name} field is too long.", 400)
    return value.decode("utf-8", errors="replace").strip()


async def _save(part: BodyPartReader, inputs: Path, name: str, budget: int) -> tuple[str, int]:
    """Stream one uploaded file into ``inputs``; its file name there and its size.

    Named by what it holds (``events.jsonl``, or ``.jsonl.gz`` when it is gzip), never by
    the name the browser sent.

    Raises:
        RunRefusedError: more than ``budget`` bytes (413).

    """
    partial = inputs / f".{name}.part"
    size = 0
    head = b""
    with partial.open("wb") as out:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > budget:
                raise RunRefusedError("", 413)
            if len(head) < 2:
                head += chunk[:2]
            out.write(chunk)
    final = f"{name}.jsonl.gz" if head.startswith(_GZIP_MAGIC) else f"{name}.jsonl"
    partial.rename(inputs / final)
    return final, size


async def _receive(
    reader: MultipartReader, inputs: Path, limit: int
) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """The form's short fields and its files (name in ``inputs`` and size), within ``limit``."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, int]] = {}
    received = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise RunRefusedError("The form holds a nested multipart part.", 400)
        name = part.name or ""
        if name in ("events", "profiles"):
            if name in files:
                raise RunRefusedError(f"One {name} file at a time.", 400)
            saved, size = await _save(part, inputs, name, limit - received)
            received += size
            if size:
                files[name] = (saved, size)
            else:
                (inputs / saved).unlink()  # an empty file input
        elif name in ("rules", "compare"):
            fields[name] = await _field(part)
        else:  # an unknown field: read past it, within the same bound
            while chunk := await part.read_chunk(_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise RunRefusedError("", 413)
    return fields, files


def _too_large(limit: int) -> str:
    return (
        f"The upload is larger than this console accepts ({limit / 2**20:,.0f} MiB, "
        "KAIROS_CONSOLE_BACKTEST_UPLOAD_MAX_MB). Run `kairos backtest --out` on the file "
        "and open its folder here instead."
    )


async def _choose(
    console: Console, backtests: Backtests, value: str, registry: Registry | None
) -> RulesChoice:
    """The ruleset a form value names, checked to compile with this Kairos.

    Raises:
        RunRefusedError: no such version (400), it does not compile (409), or the rules topic
            cannot be read (503).

    """
    if value == BOOTSTRAP or (value == LIVE and registry is not None and not registry.live):
        path = backtests.bootstrap_rules
        if path is None:
            raise RunRefusedError("Nothing is deployed, and no bootstrap rules are set.", 400)
        from rules.language.loader import load_ruleset

        try:
            ruleset = await asyncio.to_thread(load_ruleset, path)
        except RuleFileError as exc:
            raise RunRefusedError(
                f"The bootstrap rules do not compile ({len(exc.problems)} problem(s)).", 409
            ) from None
        return RulesChoice(label="bootstrap rules", version=ruleset.version, path=str(path))
    if registry is None:
        raise RunRefusedError("The rules topic cannot be read, so no version can be run.", 503)
    version = registry.live if value == LIVE else value
    if not version or version not in registry.bundles:
        raise RunRefusedError(f"There is no stored version {value!r} on the rules topic.", 400)
    compiled = await asyncio.to_thread(console.rules.compiled, registry, version)
    if isinstance(compiled, str):
        raise RunRefusedError(f"Cannot run {version}: {compiled}.", 409)
    label = f"live ({version})" if value == LIVE else version
    return RulesChoice(label=label, version=version, bundle=registry.bundle(version))


async def start_run(request: web.Request) -> web.StreamResponse:
    """Stream the upload to disk, check the rulesets, start the run, show its progress."""
    console = _console(request)
    found = _backtests(request)
    runs = found.runs
    reader = request.get(UPLOAD)
    if reader is None:
        return _problem(request, "Not run", "Send the form as multipart/form-data.", 400)
    if await asyncio.to_thread(lambda: runs.running) is not None:
        return _problem(
            request,
            "Not run",
            "A backtest is running already: one at a time. Try again when it has finished.",
            409,
        )
    limit = runs.max_upload_bytes
    length = request.content_length
    if length is not None and length > limit + _FORM_SLACK:
        return _problem(request, "Upload too large", _too_large(limit), 413)
    run_id, folder = runs.stage()
    try:
        fields, files = await _receive(reader, folder / INPUTS, limit)
        if "events" not in files:
            raise RunRefusedError("Choose an events file (JSONL, or JSONL gzipped).", 400)
        base, other = fields.get("rules") or LIVE, fields.get("compare") or ""
        if other == base:
            raise RunRefusedError("Choose two different rulesets to compare, or none.", 400)
        registry, _ = await _registry(console)
        rules = await _choose(console, found, base, registry)
        compare = await _choose(console, found, other, registry) if other else None
        if compare is not None and compare.version == rules.version:
            raise RunRefusedError(f"Both choices are {rules.version}: nothing to compare.", 400)
        session = session_of(request)
        spec = JobSpec(
            run_id=run_id,
            rules=rules,
            compare=compare,
            events=files["events"][0],
            profiles=files["profiles"][0] if "profiles" in files else None,
            folder=runs.folder_name([rules.version, *([compare.version] if compare else [])]),
            who=session.who if session else "-",
        )
        run = Run(
            spec=spec,
            folder=folder,
            started_at=runs.clock(),
            rules_label=rules.label,
            compare_label=compare.label if compare else None,
            upload={name: size for name, (_, size) in files.items()},
        )
        await asyncio.to_thread(runs.start, run)
    except RunRefusedError as exc:
        runs.discard(folder)
        message = _too_large(limit) if exc.status == 413 else str(exc)
        title = "Upload too large" if exc.status == 413 else "Not run"
        return _problem(request, title, message, exc.status)
    except BaseException:
        runs.discard(folder)
        raise
    raise web.HTTPSeeOther(f"/backtests/runs/{run_id}")


async def _run(request: web.Request) -> Run | None:
    runs = _backtests(request).runs
    return await asyncio.to_thread(runs.get, request.match_info["run_id"])


async def run_page(request: web.Request) -> web.Response:
    """A run's progress bar; its script follows the run and opens the result."""
    run = await _run(request)
    if run is None:
        return _problem(
            request, "No such run", "This console started no backtest run by that id.", 404
        )
    return render(request, "backtest_run.html", {"run": run.view()})


async def api_run(request: web.Request) -> web.Response:
    """How far a run is: state, percent (100 once its folder is written), events, folder."""
    run = await _run(request)
    if run is None:
        return _json({"error": "no such run"}, status=404)
    return _json(run.view())
