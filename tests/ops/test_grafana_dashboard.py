"""The Grafana dashboard: portable to any Grafana, provisioned in ours, with a per-rule view.

A dashboard that names its datasource by uid only works in the Grafana that has that uid;
one that uses ``${DS_PROMETHEUS}`` only works when imported through the UI (provisioning
does not resolve ``__inputs``). So the dashboard declares ``__inputs`` for the import
wizard, and every query goes through a ``datasource`` template variable, which both import
and provisioning resolve (to the default Prometheus unless the viewer picks another).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.ops import tools

DASHBOARDS = tools.REPO / "ops" / "grafana" / "dashboards"
PROVISIONING = tools.REPO / "ops" / "grafana" / "provisioning"
DATASOURCE_VARIABLE = "${datasource}"
#: Grafana's own annotation source, which is no Prometheus and has a fixed pseudo-uid.
GRAFANA_BUILT_IN = {"type": "grafana", "uid": "-- Grafana --"}
#: The template variable over the rule_id label, and the title prefix of its row.
RULE_VARIABLE = "rule"
PER_RULE_ROW = "Per rule / campaign"
_RULE_FILTER = re.compile(r'rule_id\s*=~\s*"\$(?:rule|\{rule\})"')


def _dashboards() -> list[Path]:
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert paths, f"no dashboard in {DASHBOARDS}"
    return paths


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _datasource_refs(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``datasource`` value anywhere in the document, with its JSON path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{where}.{key}", value
            yield from _datasource_refs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _datasource_refs(item, f"{where}[{index}]")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in dashboard.get("templating", {}).get("list", [])}


@pytest.mark.parametrize("path", _dashboards(), ids=lambda path: path.name)
def test_no_datasource_uid_is_hard_coded(path: Path) -> None:
    refs = list(_datasource_refs(_load(path)))
    assert refs, "no datasource reference found: is the walk broken?"
    for where, ref in refs:
        if ref == GRAFANA_BUILT_IN:
            continue
        assert isinstance(ref, dict), f"{where}: {ref!r} names a datasource by name"
        assert ref.get("uid") == DATASOURCE_VARIABLE, f"{where}: {ref!r}"
        assert "DS_PROMETHEUS" not in json.dumps(ref), f"{where}: provisioning cannot resolve it"


@pytest.mark.parametrize("path", _dashboards(), ids=lambda path: path.name)
def test_the_import_wizard_asks_for_a_prometheus(path: Path) -> None:
    inputs = _load(path).get("__inputs")
    assert inputs == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": inputs[0]["description"] if inputs else "",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]


@pytest.mark.parametrize("path", _dashboards(), ids=lambda path: path.name)
def test_the_datasource_variable_picks_among_prometheus_datasources(path: Path) -> None:
    variable = _variables(_load(path)).get("datasource")
    assert variable is not None, "no `datasource` template variable"
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    # No stored choice: each Grafana starts on its own default Prometheus (a stored uid
    # would be the hard-coding this variable replaces).
    assert variable["current"] == {}
    assert not variable.get("multi") and not variable.get("includeAll")


def test_the_per_rule_variable_lists_the_rule_ids() -> None:
    dashboard = _load(DASHBOARDS / "kairos.json")
    variable = _variables(dashboard)[RULE_VARIABLE]
    assert variable["type"] == "query"
    assert variable["query"]["query"].startswith("label_values(")
    assert variable["query"]["query"].rstrip().endswith(", rule_id)")
    assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def test_every_panel_of_the_per_rule_row_filters_by_the_rule_variable() -> None:
    panels = _load(DASHBOARDS / "kairos.json")["panels"]
    rows = [panel for panel in panels if panel["type"] == "row"]
    (row,) = [row for row in rows if row["title"].startswith(PER_RULE_ROW)]
    below = [
        panel
        for panel in panels
        if panel["type"] != "row" and panel["gridPos"]["y"] > row["gridPos"]["y"]
    ]
    next_rows = [r["gridPos"]["y"] for r in rows if r["gridPos"]["y"] > row["gridPos"]["y"]]
    if next_rows:
        below = [panel for panel in below if panel["gridPos"]["y"] < min(next_rows)]
    assert len(below) >= 4, "the per-rule row shows fires, actions, suppressions, conversions"
    for panel in below:
        for target in panel["targets"]:
            assert _RULE_FILTER.search(target["expr"]), (
                f"{panel['title']} [{target['refId']}] does not filter by ${RULE_VARIABLE}"
            )
    shown = " ".join(target["expr"] for panel in below for target in panel["targets"])
    for metric in ("kairos_rule_fires_total", "kairos_actions_total", "kairos_conversions_total"):
        assert metric in shown


def test_provisioning_gives_the_variable_a_default_prometheus() -> None:
    """The variable starts on the default datasource: provisioning must make ours it."""
    document = YAML(typ="safe", pure=True).load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    defaults = [ds for ds in document["datasources"] if ds.get("isDefault")]
    assert [ds["type"] for ds in defaults] == ["prometheus"]


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _panels(_load(DASHBOARDS / "kairos.json")["panels"])]
    assert len(ids) == len(set(ids))
