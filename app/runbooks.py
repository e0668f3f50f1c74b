"""The alert rules, with their runbook links pointing where the on-call engineer reads.

An alert's ``runbook_url`` is opened from Alertmanager, Grafana or a pager, far from this
repository, so it must be absolute. Prometheus rule files take no variables, so the shipped
``ops/prometheus/alerts.yml`` links to the operations guide on the project's public
repository (:data:`app.settings.DEFAULT_RUNBOOK_BASE_URL`), and ``kairos ops alerts``
writes a copy linking to ``KAIROS_RUNBOOK_BASE_URL`` instead (an intranet copy of the
guide, a wiki): the part after ``#`` — the alert's section — is kept, only the base
changes. The unit tests of the rules (``alerts.test.yml``) state the links too, so they
are rendered alongside and keep passing against the rendered rules.

The files are rewritten with ruamel.yaml's round-trip mode, so comments, folded text and
layout survive: rendering with the base they already have reproduces them byte for byte.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from schemas.errors import KairosError

#: The annotation holding an alert's runbook link, in the rules and in their unit tests.
RUNBOOK_KEY = "runbook_url"
#: The alert rules and their unit tests, as shipped in the repository.
SHIPPED = Path(__file__).resolve().parent.parent / "ops" / "prometheus"
RULE_FILES = ("alerts.yml", "alerts.test.yml")


class AlertRulesError(KairosError):
    """The alert rules could not be read, or hold a runbook link with no section to keep."""


def render(text: str, base_url: str, source: str = "<alert rules>") -> tuple[str, int]:
    """``text`` (a rule or rule-test file) with every runbook link on ``base_url``.

    Returns the new text and how many links it holds.

    Raises:
        AlertRulesError: ``text`` is not YAML, or a link has no ``#section``.

    """
    yaml = _round_trip_yaml()
    try:
        document = yaml.load(text)
    except YAMLError as exc:
        raise AlertRulesError(f"{source}: not YAML: {exc}") from exc
    count = _rebase(document, base_url.split("#", 1)[0], source)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue(), count


def render_directory(target: Path, base_url: str, source: Path = SHIPPED) -> list[Path]:
    """Write the rules and their unit tests from ``source`` into ``target``, rebased.

    Raises:
        AlertRulesError: a file is missing or unreadable, or holds no runbook link.

    """
    written = []
    target.mkdir(parents=True, exist_ok=True)
    for name in RULE_FILES:
        path = source / name
        if not path.is_file():
            holding = " and ".join(RULE_FILES)
            raise AlertRulesError(
                f"{path} not found: pass --source, the directory holding {holding}"
            )
        text, count = render(path.read_text(encoding="utf-8"), base_url, str(path))
        if count == 0:
            raise AlertRulesError(f"{path}: no {RUNBOOK_KEY} to render")
        (target / name).write_text(text, encoding="utf-8")
        written.append(target / name)
    return written


def _rebase(node: Any, base: str, source: str) -> int:
    """Replace, in place, the base of every ``runbook_url`` under ``node``; how many."""
    count = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == RUNBOOK_KEY and isinstance(value, str):
                _, hash_, section = value.partition("#")
                if not hash_ or not section:
                    raise AlertRulesError(
                        f"{source}: {RUNBOOK_KEY} {value!r} names no #section to keep"
                    )
                node[key] = f"{base}#{section}"
                count += 1
            else:
                count += _rebase(value, base, source)
    elif isinstance(node, list):
        count += sum(_rebase(item, base, source) for item in node)
    return count


def _round_trip_yaml() -> YAML:
    """ruamel.yaml set to the layout of the shipped files: a round trip changes nothing."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long expression
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml
