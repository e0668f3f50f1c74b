from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.metrics import Metrics
from agents.rules_watcher import RulesWatcher
from app.kafka import bootstrap_servers
from rules.deployments import (
    LIVE_KEY,
    Registry,
    bundle_key,
    compile_files,
    diff_rulesets,
    relative_names,
    version_conflicts,
)
from rules.errors import DeploymentError, RollbackError, RuleFileError
from rules.language.loader import compile_sources
from rules.ruleset import Ruleset
from schemas.codec import encode
from schemas.deployment import LivePointer, PointerAction, RulesetBundle

AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def rule(rule_id: str, version: int = 1, screen: str = "home", priority: int = 50) -> str:
    return f"""\
  - id: {rule_id}
    version: {version}
    event: app_click
    when: event.screen == "{screen}"
    channels: [push]
    template: {rule_id}
    priority: {priority}
"""


def rules_file(*rules: str) -> str:
    return "rules:\n" + "".join(rules)


def ruleset(*rules: str) -> Ruleset:
    return compile_sources({"rules.yaml": rules_file(*rules)})


def bundle(version: str, text: str | None = None) -> RulesetBundle:
    return RulesetBundle(
        version=version,
        files={"rules.yaml": text or rules_file(rule("r"))},
        deployed_at=AT,
        deployed_by="ops",
    )


def pointer(version: str, previous: str | None, action: str = "deploy") -> LivePointer:
    return LivePointer(
        version=version,
        previous_version=previous,
        action=PointerAction(action),
        at=AT,
        by="ops",
    )


def registry_of(*records: RulesetBundle | LivePointer) -> Registry:
    registry = Registry()
    for record in records:
        key = bundle_key(record.version) if isinstance(record, RulesetBundle) else LIVE_KEY
        registry.add(key.encode(), encode(record))
    return registry


# --------------------------------------------------------------------------- naming


def test_bootstrap_servers_strip_the_scheme_and_split_on_semicolons() -> None:
    assert bootstrap_servers("kafka://a:9092") == ["a:9092"]
    assert bootstrap_servers("kafka://a:9092;kafka://b:9093/ ; c:9094") == [
        "a:9092",
        "b:9093",
        "c:9094",
    ]


def test_every_version_has_its_own_key_so_compaction_keeps_them_all() -> None:
    assert bundle_key("rs-abc123def456") == "bundle:rs-abc123def456"
    assert bundle_key("rs-1") != bundle_key("rs-2") != LIVE_KEY


def test_bundle_files_are_named_relative_to_the_deployed_directory(tmp_path: Path) -> None:
    (tmp_path / "loans").mkdir()
    sources = {
        str(tmp_path / "a.yaml"): "A",
        str(tmp_path / "loans" / "dropoff.yml"): "B",
    }
    assert relative_names(tmp_path, sources) == {"a.yaml": "A", "loans/dropoff.yml": "B"}
    single = tmp_path / "a.yaml"
    single.write_text("A")
    assert relative_names(single, {str(single): "A"}) == {"a.yaml": "A"}


def test_compile_files_gives_the_bundle_names_and_the_workers_version(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one.yaml").write_text(rules_file(rule("one")))
    files, compiled = compile_files(tmp_path)
    assert list(files) == ["sub/one.yaml"]
    assert compiled.version == compile_sources(files).version
    assert [r.id for r in compiled.rules] == ["one"]


def test_compile_files_reports_problems_at_the_real_path(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(rules_file(rule("one"), rule("one")))
    with pytest.raises(RuleFileError) as caught:
        compile_files(tmp_path)
    assert {p.file for p in caught.value.problems} == {str(tmp_path / "bad.yaml")}


# --------------------------------------------------------------------------- registry


def test_registry_keeps_bundles_by_version_and_pointers_in_order() -> None:
    registry = registry_of(bundle("rs-a"), pointer("rs-a", None), bundle("rs-b"))
    registry.add(LIVE_KEY.encode(), encode(pointer("rs-b", "rs-a")))
    assert set(registry.bundles) == {"rs-a", "rs-b"}
    assert [p.version for p in registry.history] == ["rs-a", "rs-b"]
    assert registry.live == "rs-b"


def test_registry_skips_malformed_records_and_honours_tombstones() -> None:
    registry = registry_of(bundle("rs-a"), bundle("rs-b"), pointer("rs-a", None))
    registry.add(LIVE_KEY.encode(), b'{"version": ')
    registry.add(b"bundle:rs-c", b'{"version": "rs-c"}')
    registry.add(b"something-else", b"{}")
    registry.add(None, b"{}")
    registry.add(bundle_key("rs-b").encode(), None)
    assert set(registry.bundles) == {"rs-a"}
    assert registry.live == "rs-a"


def test_a_missing_bundle_is_a_deployment_error() -> None:
    with pytest.raises(DeploymentError, match="kairos rules deploy"):
        Registry().bundle("rs-gone")


def test_next_pointer_remembers_the_version_it_replaces() -> None:
    registry = registry_of(bundle("rs-a"), pointer("rs-a", None))
    moved = registry.next_pointer("rs-b", PointerAction.DEPLOY, "jane")
    assert (moved.version, moved.previous_version, moved.by) == ("rs-b", "rs-a", "jane")
    assert Registry().next_pointer("rs-a", PointerAction.DEPLOY, "jane").previous_version is None


# --------------------------------------------------------------------------- rollback


def test_rollback_returns_to_the_version_the_live_one_replaced() -> None:
    registry = registry_of(
        bundle("rs-a"), pointer("rs-a", None), bundle("rs-b"), pointer("rs-b", "rs-a")
    )
    assert registry.rollback_target() == "rs-a"


def test_rollback_needs_only_the_newest_pointer_so_it_survives_compaction() -> None:
    compacted = registry_of(bundle("rs-a"), bundle("rs-b"), pointer("rs-b", "rs-a"))
    assert compacted.rollback_target() == "rs-a"


def test_rolling_back_a_rollback_undoes_it() -> None:
    registry = registry_of(
        bundle("rs-a"),
        pointer("rs-a", None),
        bundle("rs-b"),
        pointer("rs-b", "rs-a"),
        pointer("rs-a", "rs-b", "rollback"),
    )
    assert registry.rollback_target() == "rs-b"


def test_rollback_to_any_stored_version() -> None:
    registry = registry_of(bundle("rs-a"), bundle("rs-b"), bundle("rs-c"), pointer("rs-c", "rs-b"))
    assert registry.rollback_target(to="rs-a") == "rs-a"
    with pytest.raises(RollbackError, match="already live"):
        registry.rollback_target(to="rs-c")
    with pytest.raises(RollbackError, match="stored versions: rs-a, rs-b, rs-c"):
        registry.rollback_target(to="rs-x")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ((), "nothing has been deployed"),
        ((bundle("rs-a"), pointer("rs-a", None)), "first deployed version"),
        ((bundle("rs-b"), pointer("rs-b", "rs-a")), "rs-a has no bundle"),
    ],
)
def test_rollback_without_a_target_says_why(records: tuple[Any, ...], message: str) -> None:
    with pytest.raises(RollbackError, match=message):
        registry_of(*records).rollback_target()


# --------------------------------------------------------------------------- diff


def test_diff_lists_rules_added_removed_and_changed_by_id() -> None:
    old = ruleset(rule("kept"), rule("bumped"), rule("sneaky"), rule("gone"), rule("down", 3))
    new = ruleset(
        rule("kept"),
        rule("bumped", 2, screen="cards"),
        rule("sneaky", priority=90),
        rule("down", 2, screen="cards"),
        rule("fresh"),
    )
    diff = diff_rulesets(old, new)
    assert [r.id for r in diff.added] == ["fresh"]
    assert [r.id for r in diff.removed] == ["gone"]
    assert [(c.rule_id, c.old_version, c.new_version) for c in diff.changed] == [
        ("bumped", 1, 2),
        ("down", 3, 2),
        ("sneaky", 1, 1),
    ]
    assert diff.unchanged == 1
    assert {c.rule_id: c.bumped for c in diff.changed} == {
        "bumped": True,
        "down": False,
        "sneaky": False,
    }
    assert [c.rule_id for c in diff.warnings] == ["down", "sneaky"]
    text = "\n".join(diff.lines())
    assert "+ added    fresh v1" in text
    assert "- removed  gone v1" in text
    assert "~ changed  bumped v1 -> v2\n" in text
    assert "sneaky v1 -> v1  WARNING: content changed but version did not" in text
    assert "down v3 -> v2  WARNING: version went down" in text


def test_a_version_bump_alone_is_a_change_without_warning() -> None:
    diff = diff_rulesets(ruleset(rule("r")), ruleset(rule("r", 2)))
    assert [(c.rule_id, c.warning) for c in diff.changed] == [("r", None)]


def test_diff_against_nothing_deployed_adds_everything() -> None:
    diff = diff_rulesets(None, ruleset(rule("a"), rule("b")))
    assert diff.old_version is None
    assert [r.id for r in diff.added] == ["a", "b"]


def test_diff_of_identical_rulesets_says_so() -> None:
    same = ruleset(rule("a"))
    assert diff_rulesets(same, same).lines() == ["  no change", "  1 rule(s) unchanged"]


# --------------------------------------------------------------------------- watcher


class FakeProcessor:
    """The part of EventProcessor the watcher uses."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.swaps: list[str] = []

    def swap_ruleset(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.swaps.append(ruleset.version)


def test_the_watcher_swaps_in_a_new_live_version_once_and_refuses_a_bad_one() -> None:
    running = ruleset(rule("a"))
    processor = FakeProcessor(running)
    metrics = Metrics()
    watcher = RulesWatcher(["127.0.0.1:1"], "t.rules", processor, metrics)
    good_text = rules_file(rule("a"), rule("b"))
    good = compile_sources({"rules.yaml": good_text}).version

    watcher.apply(registry_of(bundle(running.version), pointer(running.version, None)))
    assert processor.swaps == []  # start-up already runs the live version

    registry = registry_of(bundle(good, good_text), pointer(good, running.version))
    watcher.apply(registry)
    watcher.apply(registry)
    assert processor.swaps == [good]
    assert metrics.registry.get_sample_value("kairos_ruleset_swaps_total") == 1

    broken = bundle("rs-broken", "rules:\n  - id: x\n")
    watcher.apply(registry_of(broken, pointer("rs-broken", good)))
    watcher.apply(registry_of(pointer("rs-missing", "rs-broken")))
    assert processor.ruleset.version == good
    assert metrics.registry.get_sample_value("kairos_ruleset_rejected_total") == 2


def test_a_rule_changed_under_a_deployed_version_conflicts_with_any_stored_version() -> None:
    """Not only the live version: a rollback made the older one live, the pair still stands."""
    first = ruleset(rule("r", 1, screen="home"), rule("kept", 3))
    live = ruleset(rule("r", 2, screen="cards"), rule("kept", 3))
    stored = {first.version: first, live.version: live}
    new = ruleset(rule("r", 1, screen="loans"), rule("kept", 3))
    (conflict,) = version_conflicts(new, stored)
    assert conflict.startswith("rule 'r' (rules.yaml:2): its content changed but its version")
    assert f"(v1 as deployed in {first.version}); bump 'version:'" in conflict
    lower = ruleset(rule("r", 1, screen="home"), rule("kept", 2, priority=9))
    assert version_conflicts(lower, stored) == [
        "rule 'kept' (rules.yaml:9): v2 is below v3, already deployed; versions only grow"
    ]


def test_redeploying_a_stored_rule_as_it_was_or_bumped_is_no_conflict() -> None:
    first = ruleset(rule("r", 1))
    stored = {first.version: first}
    assert version_conflicts(ruleset(rule("r", 1)), stored) == []
    assert version_conflicts(ruleset(rule("r", 2, screen="x")), stored) == []
    assert version_conflicts(ruleset(rule("new", 1)), stored) == []


def test_the_registry_compiles_the_stored_versions_it_can() -> None:
    registry = Registry()
    registry.add(bundle_key("rs-good").encode(), encode(bundle("rs-good")))
    registry.add(bundle_key("rs-bad").encode(), encode(bundle("rs-bad", "rules: [{id: 1}]\n")))
    assert list(registry.compiled()) == ["rs-good"]
