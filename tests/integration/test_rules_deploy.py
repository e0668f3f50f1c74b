"""Rules deployed, refused and rolled back on a running worker, through the real CLI."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.kafka import RulesTopic, bootstrap_servers
from app.settings import EXAMPLE_RULES
from rules.language.loader import load_ruleset
from schemas.actions import Channel
from testkit.factories import click, daytime_zone, profile
from testkit.rulesets import BROKEN_RULE, broken_bundle

pytestmark = pytest.mark.integration

TRAVEL_RULE = """\
rules:
  - id: travel-insurance-interest
    version: 1
    event: app_click
    when: event.screen == "travel_insurance"
    channels: [push]
    template: travel_insurance_offer
"""


def _campaign(tmp_path: Path) -> Path:
    """The example rules plus a rule of their own: a version only a deploy can make live."""
    campaign = tmp_path / "campaign"
    shutil.copytree(EXAMPLE_RULES, campaign)
    (campaign / "travel.yaml").write_text(TRAVEL_RULE)
    return campaign


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_deploy_swaps_rules_on_a_running_worker_and_rollback_restores_them(
    kairos: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    k = kairos()
    worker = k.start_worker()
    pid = worker.pid
    t = k.topics
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    bootstrap = load_ruleset(EXAMPLE_RULES)
    original = bootstrap.version
    assert worker.metric("kairos_ruleset_info", version=original) == 1

    # The bootstrap rules become a stored version: something to roll back to.
    code, out, _ = _run(capsys, "rules", "deploy", str(EXAMPLE_RULES), "--comment", "baseline")
    assert code == 0
    assert "rule tests: " in out  # the ruleset's own tests ran before it was published
    assert f"\nLive: {original} (was nothing deployed)\n" in out
    code, out, _ = _run(capsys, "rules", "deploy", str(EXAMPLE_RULES))
    assert code == 0
    assert "already live" in out

    campaign = _campaign(tmp_path)
    code, out, _ = _run(capsys, "rules", "diff", str(campaign))
    assert code == 0
    assert "+ added    travel-insurance-interest v1" in out
    assert f"{len(bootstrap.rules)} rule(s) unchanged" in out

    code, out, _ = _run(capsys, "rules", "deploy", str(campaign), "--comment", "travel launch")
    assert code == 0
    new = load_ruleset(campaign).version
    assert f"\nLive: {new} (was {original})\n" in out
    assert worker.wait_metric("kairos_ruleset_swaps_total", 1) == 1
    assert worker.metric("kairos_ruleset_info", version=new) == 1

    k.send_profiles(profile("C-TRAVEL", timezone=daytime_zone()))  # clear of quiet hours
    k.send(t.app_click, click("C-TRAVEL", screen="travel_insurance"))
    push = t.actions(Channel.PUSH)
    records = k.collect([push], until=lambda r: len(r) >= 1)
    assert [(v["rule_id"], v["ruleset_version"]) for _, v in records] == [
        ("travel-insurance-interest", new)
    ]

    # A broken deploy is refused whole and publishes nothing; the campaign keeps running.
    broken = tmp_path / "broken"
    shutil.copytree(campaign, broken)
    (broken / "bad.yaml").write_text(BROKEN_RULE)
    code, out, err = _run(capsys, "rules", "deploy", str(broken))
    assert code == 1
    assert re.search(rf"{re.escape(str(broken / 'bad.yaml'))}:5:\d+: .*event\.scren", err)
    assert "did you mean" in err
    k.send(t.app_click, click("C-TRAVEL", screen="travel_insurance"))
    records = k.collect([push], until=lambda r: len(r) >= 2)
    assert [v["ruleset_version"] for _, v in records] == [new, new]

    code, out, _ = _run(capsys, "rules", "rollback")
    assert (code, out.strip()) == (0, f"Live: {original} (rolled back from {new})")
    assert worker.wait_metric("kairos_ruleset_info", 1, version=original) == 1
    assert worker.metric("kairos_ruleset_swaps_total") == 2

    # A bad bundle that bypassed the CLI is refused by the worker, which keeps its rules.
    topic = RulesTopic(bootstrap_servers(k.env["KAIROS_BROKER_URL"]), t)
    rogue = broken_bundle("someone")
    topic.deploy(rogue, topic.read())
    assert worker.wait_metric("kairos_ruleset_rejected_total", 1) == 1
    assert worker.metric("kairos_ruleset_info", version=original) == 1

    code, out, _ = _run(capsys, "rules", "list")
    assert code == 0
    assert out.splitlines()[0] == "Live: rs-rogue"
    history = re.findall(r"^  \S+T\S+  (deploy|rollback) +(rs-\S+)", out, re.MULTILINE)
    assert history == [
        ("deploy", original),
        ("deploy", new),
        ("rollback", original),
        ("deploy", "rs-rogue"),
    ]
    assert '"travel launch"' in out
    assert "does not compile here" in out
    code, out, err = _run(capsys, "rules", "diff", str(campaign))  # a broken live never blocks
    assert code == 0
    assert "rs-rogue cannot be compiled here" in err
    assert worker.pid == pid
    assert worker.is_running()


def test_a_starting_worker_runs_the_deployed_version_not_its_bootstrap_rules(
    kairos: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    k = kairos()
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    code, _, err = _run(capsys, "rules", "rollback")
    assert code == 1
    assert "nothing has been deployed yet" in err
    campaign = _campaign(tmp_path)
    assert _run(capsys, "rules", "deploy", str(campaign))[0] == 0
    code, _, err = _run(capsys, "rules", "rollback")
    assert code == 1
    assert "first deployed version" in err

    worker = k.start_worker()
    assert worker.metric("kairos_ruleset_info", version=load_ruleset(campaign).version) == 1
    assert worker.metric("kairos_ruleset_swaps_total") == 0


def test_a_deploy_is_refused_when_a_rule_changed_without_its_version_or_a_rule_test_fails(
    kairos: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both were deployed before, with at most a warning; each override is on the record."""
    k = kairos()
    for name in ("KAIROS_BROKER_URL", "KAIROS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, k.env[name])
    campaign = _campaign(tmp_path)
    assert _run(capsys, "rules", "deploy", str(campaign), "--comment", "launch")[0] == 0
    launched = load_ruleset(campaign).version

    # The travel rule's priority changes but its version stays 1: refused, nothing published.
    travel = campaign / "travel.yaml"
    travel.write_text(TRAVEL_RULE + "    priority: 80\n")
    code, _, err = _run(capsys, "rules", "deploy", str(campaign))
    assert code == 1
    assert "refused: rule 'travel-insurance-interest'" in err
    assert f"content changed but its version did not (v1 as deployed in {launched})" in err
    topic = RulesTopic(bootstrap_servers(k.env["KAIROS_BROKER_URL"]), k.topics)
    assert topic.read().live == launched
    assert _run(capsys, "rules", "deploy", str(campaign), "--force")[0] == 2  # no comment
    code, out, _ = _run(
        capsys, "rules", "deploy", str(campaign), "--force", "--comment", "typo fix, same offer"
    )
    assert code == 0
    forced = topic.read()
    assert forced.live == load_ruleset(campaign).version
    assert forced.bundles[forced.live].overrides == [
        next(line for line in err.splitlines() if line.startswith("refused: ")).removeprefix(
            "refused: "
        )
    ]

    # A rule test of the ruleset fails: refused before the broker is even asked.
    travel.write_text(TRAVEL_RULE.replace("version: 1", "version: 2") + "    priority: 90\n")
    (campaign / "tests" / "travel.yaml").write_text(
        """
tests:
  - name: the travel screen gets an SMS
    events:
      - {at: "2026-11-02T10:00:00Z", type: app_click, screen: travel_insurance, platform: ios}
    expect: {actions: [{rule: travel-insurance-interest, channel: sms}]}
"""
    )
    code, out, err = _run(capsys, "rules", "deploy", str(campaign))
    assert code == 1
    assert "FAIL" in out
    assert "channel 'push' instead of 'sms'" in out
    assert "rule tests failed; nothing deployed" in err
    assert topic.read().live == forced.live
    code, out, _ = _run(capsys, "rules", "deploy", str(campaign), "--skip-tests")
    assert code == 0
    skipped = topic.read()
    assert skipped.bundles[skipped.live].overrides == ["rule tests skipped (--skip-tests)"]
