"""The Prometheus config, the alert rules and their runbooks; the dashboard's PromQL.

The promtool checks run Debian's promtool (``ops/install-ops-tools.sh``): the config and
rules must load, the unit tests in ``alerts.test.yml`` must pass, and every dashboard
query must parse. The static checks need no tool.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from app.runbooks import render_directory
from app.settings import DEFAULT_RUNBOOK_BASE_URL
from tests.ops import tools
from tests.ops.metric_refs import dashboard_expressions

PROMETHEUS = tools.REPO / "ops" / "prometheus"
OPERATIONS_DOC = tools.REPO / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}
#: Alerts whose unit tests must show them both firing and staying quiet.
MUST_BE_TESTED_BOTH_WAYS = (
    "KairosWorkerDown",
    "KairosDeadLetterRate",
    "KairosNoActionsWhileEventsFlow",
    "KairosRecoveryTooLong",
)
#: What Grafana substitutes in the dashboard's queries, so promtool can parse them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$rule": ".*",
}


def _load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in _load(PROMETHEUS / "alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _github_anchor(heading: str) -> str:
    """The fragment GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_expected_alerts_exist() -> None:
    names = [rule["alert"] for rule in _alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == {
        "KairosConsumerLagGrowing",
        "KairosDeadLetterRate",
        "KairosNoActionsWhileEventsFlow",
        "KairosWorkerDown",
        "KairosRecoveryTooLong",
        "KairosDecisionLatencyHigh",
        "KairosRuleErrors",
        "KairosUndecidableInput",
        "KairosRulesetRejected",
    }


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_is_actionable(rule: dict[str, Any]) -> None:
    assert "for" in rule, "say how long the condition must hold"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#{rule['alert'].lower()}"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_runbook_link_is_absolute(rule: dict[str, Any]) -> None:
    """Opened from Alertmanager, Grafana or a pager: a relative link leads nowhere."""
    url = urlsplit(rule["annotations"]["runbook_url"])
    assert url.scheme == "https" and url.netloc, rule["annotations"]["runbook_url"]
    assert url.path.endswith("/docs/operations.md")


def test_every_runbook_link_lands_on_a_section() -> None:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", OPERATIONS_DOC.read_text(), re.MULTILINE)
    anchors = {_github_anchor(heading) for heading in headings}
    for rule in _alerts():
        fragment = rule["annotations"]["runbook_url"].partition("#")[2]
        assert fragment in anchors, f"{rule['alert']}: no section #{fragment} in operations.md"


def test_the_unit_tests_expect_the_rules_runbook_links() -> None:
    """alerts.test.yml states each firing alert's annotations: its links must be the rules'."""
    links = {rule["alert"]: rule["annotations"]["runbook_url"] for rule in _alerts()}
    checked = 0
    for test in _load(PROMETHEUS / "alerts.test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                expected = alert.get("exp_annotations", {}).get("runbook_url")
                if expected is not None:
                    assert expected == links[case["alertname"]], case["alertname"]
                    checked += 1
    assert checked >= len(MUST_BE_TESTED_BOTH_WAYS)


def test_the_rules_rendered_for_another_base_still_pass_their_unit_tests(
    tmp_path: Path,
) -> None:
    """What `kairos ops alerts` writes is what an operator deploys: it must still load."""
    promtool = tools.promtool()
    render_directory(tmp_path, "https://wiki.bank.example/sre/kairos-operations")
    rendered = _load(tmp_path / "alerts.yml")
    for group in rendered["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook_url"].startswith(
                "https://wiki.bank.example/sre/kairos-operations#"
            )
    result = tools.run([promtool, "check", "rules", tmp_path / "alerts.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
    result = tools.run([promtool, "test", "rules", tmp_path / "alerts.test.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_key_alerts_are_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in _load(PROMETHEUS / "alerts.test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name in MUST_BE_TESTED_BOTH_WAYS:
        assert name in firing, f"no unit test shows {name} firing"
        assert name in quiet, f"no unit test shows {name} staying quiet"


def test_promtool_accepts_the_config() -> None:
    result = tools.run([tools.promtool(), "check", "config", PROMETHEUS / "prometheus.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = tools.run([tools.promtool(), "check", "rules", PROMETHEUS / "alerts.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_unit_tests_pass() -> None:
    result = tools.run([tools.promtool(), "test", "rules", PROMETHEUS / "alerts.test.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, as a recording rule."""
    promtool = tools.promtool()
    rules = []
    for index, (where, expr) in enumerate(sorted(dashboard_expressions().items())):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: a Grafana variable this test does not know: {expr}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    document = {"groups": [{"name": "dashboard", "rules": rules}]}
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(document, out)
    result = tools.run([promtool, "check", "rules", path])
    assert result.returncode == 0, result.stdout + result.stderr
