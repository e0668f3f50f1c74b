"""Alert runbook links: absolute by default, rebased by ``kairos ops alerts``, nothing else moved.

The links' targets (each alert's section in docs/operations.md) are checked in
``tests/ops/test_prometheus_rules.py``, with promtool running the rendered rules' tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from app.cli import EXIT_FAILURE, EXIT_USAGE, main
from app.runbooks import RULE_FILES, RUNBOOK_KEY, SHIPPED, AlertRulesError, render
from app.settings import DEFAULT_RUNBOOK_BASE_URL

OTHER_BASE = "https://wiki.bank.example/sre/kairos-operations"


@pytest.fixture(autouse=True)
def no_kairos_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KAIROS_"):
            monkeypatch.delenv(name)


def _links(node: Any) -> list[str]:
    """Every runbook link in a parsed document, in order."""
    if isinstance(node, dict):
        found = [node[RUNBOOK_KEY]] if RUNBOOK_KEY in node else []
        return found + [
            link for key, value in node.items() if key != RUNBOOK_KEY for link in _links(value)
        ]
    if isinstance(node, list):
        return [link for item in node for link in _links(item)]
    return []


def _without_links(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_links(value) for key, value in node.items() if key != RUNBOOK_KEY}
    if isinstance(node, list):
        return [_without_links(item) for item in node]
    return node


def _parse(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize("name", RULE_FILES)
def test_the_shipped_links_are_the_default_base(name: str) -> None:
    """Rendering with the base they have is a no-op, byte for byte: comments survive."""
    shipped = (SHIPPED / name).read_text()
    rendered, count = render(shipped, DEFAULT_RUNBOOK_BASE_URL)
    assert rendered == shipped
    assert count == len(_links(_parse(shipped))) > 0
    assert all(link.startswith(f"{DEFAULT_RUNBOOK_BASE_URL}#") for link in _links(_parse(shipped)))


@pytest.mark.parametrize("name", RULE_FILES)
def test_another_base_changes_every_link_and_nothing_else(name: str) -> None:
    shipped = (SHIPPED / name).read_text()
    rendered, count = render(shipped, OTHER_BASE)
    before, after = _parse(shipped), _parse(rendered)
    assert count == len(_links(after)) == len(_links(before))
    assert _links(after) == [f"{OTHER_BASE}#{link.partition('#')[2]}" for link in _links(before)], (
        "the section of each link is kept"
    )
    assert _without_links(after) == _without_links(before)
    assert rendered.count("\n#") == shipped.count("\n#"), "comments are kept"


def test_a_link_without_a_section_is_refused() -> None:
    text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        annotations:\n"
    with pytest.raises(AlertRulesError, match="names no #section"):
        render(text + "          runbook_url: https://example.org/ops.md\n", OTHER_BASE)


def test_text_that_is_not_yaml_is_refused() -> None:
    with pytest.raises(AlertRulesError, match="not YAML"):
        render("groups: [unclosed", OTHER_BASE, "alerts.yml")


def test_kairos_ops_alerts_renders_with_the_configured_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAIROS_RUNBOOK_BASE_URL", OTHER_BASE)
    assert main(["ops", "alerts", "--output-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"runbook links on {OTHER_BASE}"
    for name in RULE_FILES:
        links = _links(_parse((tmp_path / name).read_text()))
        assert links and all(link.startswith(f"{OTHER_BASE}#") for link in links)


def test_kairos_ops_alerts_without_the_shipped_files_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ops", "alerts", "--output-dir", str(tmp_path / "out"), "--source", "/nowhere"])
    assert code == EXIT_FAILURE
    assert "pass --source" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("docs/operations.md", "relative URL without a base"),
        ("ftp://files.bank/ops.md", "URL scheme should be 'http' or 'https'"),
        ("https://wiki.bank/ops#top", "must not have a #fragment"),
    ],
)
def test_a_runbook_base_that_cannot_work_is_a_usage_error(
    value: str, why: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAIROS_RUNBOOK_BASE_URL", value)
    assert main(["ops", "alerts", "--output-dir", "unused"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("kairos: KAIROS_RUNBOOK_BASE_URL: ") and why in err


def test_the_default_base_is_the_one_the_project_publishes() -> None:
    import tomllib

    project = tomllib.loads((SHIPPED.parents[1] / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Runbooks"] == DEFAULT_RUNBOOK_BASE_URL
