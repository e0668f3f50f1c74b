"""Which metric names the alert rules and the Grafana dashboard refer to.

A dashboard panel or an alert on a metric the workers do not export shows "No data" or
never fires, and nothing else complains: a renamed metric breaks monitoring silently. So
tests extract every metric name from the PromQL in ``ops/`` and compare it with what the
worker exports (``test_metric_names.py``).

The extractor is deliberately small rather than a PromQL parser: it blanks out everything
that can contain identifiers that are not metric names (strings, label matchers, range
and subquery brackets, ``by``/``without``/``on``/``ignoring`` clauses, ``offset``
durations, Grafana variables, numbers), then keeps the identifiers that are not function
calls or keywords. ``promtool`` checks that the same expressions parse
(``test_prometheus_rules.py``), so the extractor only has to be right on valid PromQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "ops" / "prometheus" / "alerts.yml"
DASHBOARDS = REPO / "ops" / "grafana" / "dashboards"

#: Words of PromQL that can stand where a metric name could and are not one. Functions and
#: aggregations need no list: they are always followed by "(" (after a by/without clause,
#: which is removed first).
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "atan2",
        "inf",
        "nan",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|!=|!~|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_AT = re.compile(r"@\s*(?:[-+]?[\d.]+|start\s*\(\s*\)|end\s*\(\s*\))")
_NUMBER = re.compile(
    r"(?<![\w:.])[-+]?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w:])"
)
_IDENTIFIER = re.compile(r"(?<![\w:])[A-Za-z_:][\w:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<selector>.*),\s*\w+\s*\)\s*$", re.DOTALL)
#: Sample suffixes of a histogram (or summary) family, whose name is the base name.
_SAMPLE_SUFFIX = re.compile(r"_(?:bucket|sum|count)$")


class UncheckableExpressionError(ValueError):
    """The expression names metrics in a way no static check can resolve (a regex)."""


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression (or Grafana query) selects, as written."""
    names: set[str] = set()
    match = _LABEL_VALUES.match(expr)
    if match:  # Grafana's label_values(selector, label): only the selector names metrics
        expr = match.group("selector")
    for operator, quoted in _NAME_MATCHER.findall(expr):
        if operator != "=":
            raise UncheckableExpressionError(
                f"__name__{operator}{quoted} selects metrics by pattern; name them instead: {expr}"
            )
        names.add(quoted[1:-1])
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _BRACES.sub(" ", text)
    while True:  # nested subqueries: rate(x[5m])[30m:1m]
        stripped = _BRACKETS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _AT.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for found in _IDENTIFIER.finditer(text):
        word = found.group()
        if word.lower() in KEYWORDS:
            continue
        if text[found.end() :].lstrip().startswith("("):
            continue  # a function or aggregation call
        names.add(word)
    return names


def family_name(name: str) -> str:
    """The exported family a sample name belongs to: ``x_bucket`` -> ``x``.

    ``_total`` stays: a Counter named ``kairos_x_total`` is scraped as ``kairos_x_total``,
    and that is the name an expression must use.
    """
    return _SAMPLE_SUFFIX.sub("", name)


def alert_expressions(path: Path = ALERTS) -> dict[str, str]:
    """Alert name -> PromQL expression, for every alerting rule in ``path``."""
    document: Any = YAML(typ="safe", pure=True).load(path.read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels with those nested in collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def dashboard_expressions(directory: Path = DASHBOARDS) -> dict[str, str]:
    """``file: panel title [refId]`` -> PromQL, for every target of every dashboard."""
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found[f"{path.name}: {panel['title']} [{target['refId']}]"] = target["expr"]
    return found


def template_queries(directory: Path = DASHBOARDS) -> dict[str, str]:
    """``file: $variable`` -> query, for the dashboards' query variables.

    These are Grafana queries such as ``label_values(up{job="kairos"}, instance)``, not
    PromQL, but the selector inside names metrics too.
    """
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if variable.get("type") == "query" and text:
                found[f"{path.name}: ${variable['name']}"] = text
    return found


def referenced_metrics() -> dict[str, set[str]]:
    """Family name -> where it is referenced, over the alert rules and the dashboards."""
    where: dict[str, set[str]] = {}
    sources = {
        **{f"alert {name}": expr for name, expr in alert_expressions().items()},
        **{f"dashboard {name}": expr for name, expr in dashboard_expressions().items()},
        **{f"dashboard {name}": query for name, query in template_queries().items()},
    }
    for source, expr in sources.items():
        for name in metric_names(expr):
            where.setdefault(family_name(name), set()).add(source)
    return where
