"""``rules.language``: its public names resolve, and importing it first or last has no cycle."""

import subprocess
import sys

import pytest

import rules.language as language


def test_every_public_name_resolves() -> None:
    for name in language.__all__:
        assert getattr(language, name) is not None, name


@pytest.mark.parametrize(
    "module", ["rules.policy", "rules.features", "rules.ruleset", "rules.engine", "rules.language"]
)
def test_a_module_importing_the_language_can_be_imported_first(module: str) -> None:
    # rules.policy, rules.features and rules.ruleset import rules.language, whose spec and
    # loader import them back: only a fresh interpreter shows the order that would break.
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
