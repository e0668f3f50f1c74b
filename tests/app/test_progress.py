"""The progress line of ``kairos backtest`` and ``kairos report``: fits the terminal, or is silent.

A line wider than the terminal wraps, and every redraw then leaves a line behind (the
hand-written bar did so under 80 columns); on a pipe or in a CI log there is no line at all.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import struct
import termios
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.cli import main
from app.progress import Progress
from app.settings import EXAMPLE_RULES, load_settings
from rules.engine import EngineOptions
from rules.offline.replay import Replay
from schemas.codec import decode_event, encode
from schemas.profile import CustomerProfile
from schemas.topics import TopicNames
from testkit.factories import drop_off, profile
from testkit.rulesets import IMMEDIATE_RULES, ruleset_from

WIDTHS = (60, 80)


class FakeTerminal(io.StringIO):
    """A terminal with no descriptor to ask its size: tqdm cannot, so COLUMNS says it."""

    def isatty(self) -> bool:
        return True


def _lines(written: str) -> list[str]:
    """Every line a terminal showed: each redraw starts at ``\\r``, the last ends in ``\\n``."""
    return [line for line in re.split(r"[\r\n]", written) if line.strip()]


def _draw(bar: Progress, sized: bool) -> None:
    """A long run: counts into the millions, the fraction read rising to the end."""
    for step in range(1, 41):
        bar.update(step * 123_457, step / 40 if sized else None)
    bar.close(40 * 123_457)


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("sized", [True, False], ids=["sized", "counted"])
def test_every_line_fits_the_width_that_columns_gives(
    columns: int, sized: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    terminal = FakeTerminal()
    label = "a-rather-long-label-for-a-backtest"
    _draw(Progress(label, "events", sized=sized, stream=terminal, redraw_s=0), sized)
    lines = _lines(terminal.getvalue())
    assert len(lines) > 10, "it redrew as the run went"
    assert max(len(line) for line in lines) <= columns
    assert terminal.getvalue().endswith("\n"), "the last line stays, ended"
    if sized:
        assert "100%" in lines[-1] and "4.94M events" in lines[-1]
    else:
        assert "4.94M events" in lines[-1]


@pytest.fixture
def pseudo_terminal() -> Iterator[tuple[int, int]]:
    """A real terminal (a pty): its (reading, writing) descriptors."""
    reading, writing = os.openpty()
    fcntl.fcntl(reading, fcntl.F_SETFL, fcntl.fcntl(reading, fcntl.F_GETFL) | os.O_NONBLOCK)
    yield reading, writing
    os.close(reading)
    os.close(writing)


@pytest.mark.parametrize("columns", WIDTHS)
def test_on_a_real_terminal_every_line_fits_its_width(
    columns: int, pseudo_terminal: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # tqdm asks the terminal itself
    reading, writing = pseudo_terminal
    fcntl.ioctl(writing, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    shown = bytearray()
    with open(writing, "w", encoding="utf-8", closefd=False) as stream:
        bar = Progress("backtest", "events", sized=True, stream=stream, redraw_s=0)
        for step in range(1, 41):
            bar.update(step * 123_457, step / 40)
            stream.flush()
            shown += _read_all(reading)  # keep the terminal's buffer from filling up
        bar.close(40 * 123_457)
    shown += _read_all(reading)
    lines = _lines(shown.decode("utf-8"))
    assert len(lines) > 10
    assert max(len(line) for line in lines) <= columns


def _read_all(descriptor: int) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(os.read(descriptor, 65536))
        except BlockingIOError:
            return b"".join(chunks)


def test_nothing_is_drawn_when_stderr_is_not_a_terminal() -> None:
    piped = io.StringIO()  # a pipe, a CI log: isatty() is False
    _draw(Progress("backtest", "events", sized=True, stream=piped, redraw_s=0), True)
    _draw(Progress("report", "records", stream=piped, redraw_s=0), False)
    assert piped.getvalue() == ""


def test_the_backtest_draws_its_progress_within_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(drop_off(f"C{i}")) + "\n" for i in range(10)))
    assert main(["backtest", "--rules", str(EXAMPLE_RULES), "--events", str(events),
                 "--progress", "on"]) == 0  # fmt: skip
    lines = _lines(capsys.readouterr().err)
    assert max(len(line) for line in lines) <= 60
    drawn = [line for line in lines if line.startswith("backtest")]
    assert drawn[-1].startswith("backtest 100%") and "10.0 events" in drawn[-1]


def _decision_records(topics: TopicNames, count: int) -> list[Any]:
    """What the decisions topic holds after ``count`` customers dropped off a loan form."""
    replay = Replay(ruleset_from(IMMEDIATE_RULES), EngineOptions())
    records = []
    for number in range(count):
        customer = f"C{number}"
        fields = profile(customer, timezone="UTC", updated_at="2026-01-01T00:00:00Z")
        replay.profile(CustomerProfile.model_validate(fields))
        event = drop_off(customer, occurred_at="2026-11-02T12:00:00+00:00", step=4)
        for verdict in replay.event(decode_event(json.dumps(event).encode())):
            records += [
                SimpleNamespace(topic=topics.decisions, value=encode(decision))
                for decision in verdict.decisions
            ]
    return records


@pytest.fixture
def topics_holding_decisions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``kairos report``'s topics, read from a fake source instead of a broker."""
    topics = TopicNames(load_settings().topic_prefix)
    records = _decision_records(topics, 300)
    monkeypatch.setattr("app.cli.report.reach_broker", lambda bootstrap, timeout: timeout)
    monkeypatch.setattr("app.kafka.read_to_end", lambda *args, **kwargs: iter(records))
    return records


def test_kairos_report_shows_its_progress_while_reading_the_topics(
    topics_holding_decisions: list[Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["report", "--progress", "on"]) == 0
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert lines[0].startswith("report 0.00 records")
    assert lines[-1].startswith(f"report {len(topics_holding_decisions)} records")
    assert max(len(line) for line in lines) <= 60
    assert "loan-dropoff-digital-nudge" in captured.out, "and then the report itself"


def test_kairos_report_on_a_pipe_prints_the_report_only(
    topics_holding_decisions: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 0  # --progress auto; pytest's stderr is no terminal
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "loan-dropoff-digital-nudge" in captured.out
