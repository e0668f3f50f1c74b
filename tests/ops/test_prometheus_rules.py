"""The Prometheus config, the alert rules and their runbooks; the dashboard's PromQL.

The promtool checks run Debian's promtool (``ops/install-ops-tools.sh``): the config and
rules must load, the unit tests in ``alerts.test.yml`` must pass, and every dashboard
query must parse. The static checks need no tool.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

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
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*"}


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
    assert annotations["runbook_url"] == f"docs/operations.md#{rule['alert'].lower()}"


def test_every_runbook_link_lands_on_a_section() -> None:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", OPERATIONS_DOC.read_text(), re.MULTILINE)
    anchors = {_github_anchor(heading) for heading in headings}
    for rule in _alerts():
        fragment = rule["annotations"]["runbook_url"].partition("#")[2]
        assert fragment in anchors, f"{rule['alert']}: no section #{fragment} in operations.md"


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
