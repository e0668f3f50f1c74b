"""``kairos`` fails safe: help for every command, one-line errors, bounded broker waits."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from app.cli import EXIT_FAILURE, EXIT_USAGE, main, parser
from app.settings import EXAMPLE_RULES

KAIROS = Path(sys.executable).parent / "kairos"  # the console script pip installed
SHORT_TOKEN = "sh0rtSecret"
LONG_TOKEN = "n0t-shown-anywhere-Secret-1234"


def _command_paths(
    command: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand, read from the parser so a new one is covered too."""
    yield prefix
    for action in command._actions:  # argparse has no public way to walk its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


COMMANDS = list(_command_paths(parser()))


@pytest.fixture(autouse=True)
def no_kairos_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own KAIROS_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.upper().startswith("KAIROS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAIROS_")}
    return subprocess.run(
        [str(KAIROS), *args],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_tree_is_walked() -> None:
    assert {("rules", "deploy"), ("topics", "ensure"), ("report",), ()} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "kairos")
def test_every_command_prints_its_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('kairos', *command))}")


def test_the_installed_command_prints_its_help() -> None:
    """What the Dockerfile runs at build time, through the console script."""
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert "report" in result.stdout and result.stderr == ""


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"kairos {version('kairos')}\n"


# Every command that talks to the broker, with --timeout where it has one.
BROKER_COMMANDS = [
    ["rules", "deploy", str(EXAMPLE_RULES)],
    ["rules", "rollback"],
    ["rules", "list"],
    ["rules", "diff", str(EXAMPLE_RULES)],
    ["report"],
    ["backtest", "--rules", str(EXAMPLE_RULES), "--from-kafka"],
    ["generate", "--to-kafka"],
    ["topics", "ensure"],
]
# Every command that reads KAIROS_* settings; they must all fail the same way.
SETTINGS_COMMANDS = [["worker"], *BROKER_COMMANDS]


@pytest.mark.parametrize("command", SETTINGS_COMMANDS, ids=" ".join)
def test_an_invalid_variable_is_one_line_naming_it(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAIROS_PARTITIONS", "0")
    assert main(command) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err == (
        "kairos: KAIROS_PARTITIONS: Input should be greater than or equal to 1\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"KAIROS_CUSTOMER_API_TOKEN": SHORT_TOKEN}, ["KAIROS_CUSTOMER_API_TOKEN"]),
        (
            {"KAIROS_CUSTOMER_API_TOKEN": SHORT_TOKEN, "KAIROS_WEB_PORT": "http"},
            ["KAIROS_CUSTOMER_API_TOKEN", "KAIROS_WEB_PORT"],
        ),
        ({"KAIROS_CUSTOMER_API_TOKEN": LONG_TOKEN, "KAIROS_WEB_PORT": "0"}, ["KAIROS_WEB_PORT"]),
        (  # a model-level error is given every input, the token included
            {
                "KAIROS_CUSTOMER_API_TOKEN": LONG_TOKEN,
                "KAIROS_BROKER_FLAVOR": "tansu",
                "KAIROS_PROCESSING_GUARANTEE": "exactly_once",
            },
            ["KAIROS_PROCESSING_GUARANTEE"],
        ),
    ],
    ids=["short token", "short token and bad port", "bad port", "contradiction"],
)
def test_a_settings_error_never_shows_the_token(
    environment: dict[str, str],
    named: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["worker"]) == EXIT_USAGE
    captured = capsys.readouterr()
    token = environment["KAIROS_CUSTOMER_API_TOKEN"]
    assert token not in captured.out + captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("kairos: ")
    for name in named:
        assert name in captured.err


def test_the_installed_command_never_shows_a_short_token() -> None:
    """The report that opened the issue: ``KAIROS_CUSTOMER_API_TOKEN=sh0rtSecret kairos worker``."""
    result = _run("worker", env={"KAIROS_CUSTOMER_API_TOKEN": SHORT_TOKEN})
    assert result.returncode == EXIT_USAGE
    assert SHORT_TOKEN not in result.stdout + result.stderr
    assert result.stderr.startswith("kairos: KAIROS_CUSTOMER_API_TOKEN: must be at least 16")
    assert result.stderr.count("\n") == 1


TIMEOUT_S = 1.0
#: Start-up of the client, the probe's last back-off, a loaded CI machine.
SLACK_S = 3.0


@pytest.mark.parametrize("command", BROKER_COMMANDS, ids=" ".join)
def test_an_unreachable_broker_is_one_line_within_the_timeout(
    command: list[str],
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAIROS_BROKER_URL", f"kafka://127.0.0.1:{closed_port}")
    started = time.monotonic()
    assert main([*command, "--timeout", str(TIMEOUT_S)]) == EXIT_FAILURE
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot reach the broker at 127.0.0.1:{closed_port} within 1 s" in err
    assert "KAIROS_BROKER_URL" in err


def test_the_installed_topics_ensure_honours_its_timeout(closed_port: int) -> None:
    """The observed failure: 30 s and a KafkaTimeoutError traceback for ``--timeout 5``."""
    started = time.monotonic()
    result = _run(
        "topics",
        "ensure",
        "--timeout",
        "2",
        env={"KAIROS_BROKER_URL": f"kafka://127.0.0.1:{closed_port}"},
    )
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_FAILURE
    assert elapsed < 2 + SLACK_S, elapsed
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"kairos: cannot reach the broker at 127.0.0.1:{closed_port} within 2 s: "
    )
    assert result.stderr.count("\n") == 1


def test_a_missing_events_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["backtest", "--rules", str(EXAMPLE_RULES), "--events", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kairos: no such input file") and err.count("\n") == 1


def test_rules_test_passes_a_ruleset_without_tests_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to fail (exit 1) when PATH/tests/ did not exist."""
    (tmp_path / "r.yaml").write_text(
        "rules: [{id: r, version: 1, event: app_click, channels: [sms], template: t}]\n"
    )
    assert main(["rules", "test", str(tmp_path)]) == 0
    assert f"note: no rule tests in {tmp_path / 'tests'}/" in capsys.readouterr().err


def test_rules_test_fails_and_shows_the_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules: [{id: r, version: 1, event: app_click, channels: [sms], template: t}]\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        "tests: [{name: nothing, events: [{at: '2026-11-02T10:00:00Z', type: app_click,"
        " screen: home, platform: ios}], expect: {actions: []}}]\n"
    )
    assert main(["rules", "test", str(tmp_path)]) == EXIT_FAILURE
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "rule tests: 0 passed, 1 failed" in out


def test_rules_schema_writes_where_it_is_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It could only write next to the installed package."""
    from rules.language.file_schema import generate

    out = tmp_path / "rule-file.schema.json"
    assert main(["rules", "schema", "--out", str(out)]) == 0
    assert out.read_text() == generate()
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["rules", "schema", "--out", "-"]) == 0
    assert capsys.readouterr().out == generate()
