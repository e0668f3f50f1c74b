"""``kairos rules``: check, test and deploy rule files; roll back; list and diff versions.

``validate``, ``test`` and ``schema`` work offline on files; ``deploy``, ``rollback``,
``list`` and ``diff`` read (and write) the rules topic, each bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import EXIT_FAILURE, EXIT_USAGE, Commands, print_problems
from rules.errors import DeploymentError, RollbackError, RuleFileError

if TYPE_CHECKING:
    from app.kafka import RulesTopic
    from rules.deployments import Registry
    from rules.ruleset import Ruleset
    from schemas.deployment import RulesetBundle


def add_commands(commands: Commands) -> None:
    rules = commands.add_parser("rules", help="rule tooling").add_subparsers(
        dest="rules_command", required=True
    )
    validate = rules.add_parser(
        "validate", help="check rule files; every problem with file:line:column"
    )
    validate.add_argument("path", type=Path)
    validate.set_defaults(handler=_cmd_rules_validate)

    test = rules.add_parser("test", help="run the rule tests in PATH/tests/ (offline)")
    test.add_argument("path", type=Path)
    test.set_defaults(handler=_cmd_rules_test)

    schema = rules.add_parser(
        "schema", help="write the rule files' JSON Schema (for editors' autocompletion)"
    )
    schema.add_argument(
        "--out",
        metavar="FILE",
        help="where to write it; '-' for stdout (default: rules/rule-file.schema.json "
        "of the installed package, which must be writable)",
    )
    schema.set_defaults(handler=_cmd_rules_schema)

    deploy = rules.add_parser(
        "deploy",
        help="validate rule files and run their tests, then make them live on every worker "
        "(no restart)",
    )
    deploy.add_argument("path", type=Path)
    deploy.add_argument("--comment", default="", help="why: kept in the deploy history")
    deploy.add_argument("--by", help="who deploys, for the history (default: user@host)")
    deploy.add_argument(
        "--force",
        action="store_true",
        help="deploy although a rule's content changed without a new 'version:' (decisions "
        "would then record one version for two rules); needs --comment saying why",
    )
    deploy.add_argument(
        "--skip-tests",
        action="store_true",
        help="publish without running the rule tests in PATH/tests/ (recorded in the history)",
    )
    _broker_timeout(deploy)
    deploy.set_defaults(handler=_cmd_rules_deploy)

    rollback = rules.add_parser(
        "rollback", help="make the version live before the current one live again"
    )
    rollback.add_argument("--to", metavar="VERSION", help="any stored version instead")
    rollback.add_argument("--by", help="who rolls back, for the history (default: user@host)")
    _broker_timeout(rollback)
    rollback.set_defaults(handler=_cmd_rules_rollback)

    listing = rules.add_parser("list", help="the live version and the deploy history")
    _broker_timeout(listing)
    listing.set_defaults(handler=_cmd_rules_list)

    diff = rules.add_parser("diff", help="what deploying PATH would change, rule by rule")
    diff.add_argument("path", type=Path)
    _broker_timeout(diff)
    diff.set_defaults(handler=_cmd_rules_diff)


def _broker_timeout(command: argparse.ArgumentParser) -> None:
    from app.kafka import READ_TIMEOUT_S

    command.add_argument(
        "--timeout",
        type=float,
        default=READ_TIMEOUT_S,
        help=f"seconds to wait for the broker (default: {READ_TIMEOUT_S:g})",
    )


def _cmd_rules_validate(args: argparse.Namespace) -> int:
    from rules.language.loader import load_ruleset

    try:
        ruleset = load_ruleset(args.path)
    except RuleFileError as exc:
        return print_problems(exc)
    print(f"OK: {len(ruleset.rules)} rules, version {ruleset.version}")
    for rule in ruleset.rules:
        state = "enabled" if rule.spec.enabled else "disabled"
        channels = ">".join(c.value for c in rule.channels)
        print(
            f"  {rule.id} v{rule.version} on {rule.spec.event} -> {channels} "
            f"({state}) {rule.source}"
        )
    return 0


def _rules_topic(args: argparse.Namespace) -> RulesTopic:
    from app.kafka import RulesTopic
    from app.settings import load_settings

    return RulesTopic.from_settings(load_settings(), timeout=args.timeout)


def _live_ruleset(registry: Registry) -> Ruleset | None:
    """The live version compiled, to compare against; None when none is live or usable.

    A live version that does not compile here must not block a deploy: replacing it is
    exactly what ops need then.
    """
    from rules.deployments import compile_bundle

    if registry.live is None:
        return None
    try:
        return compile_bundle(registry.bundle(registry.live))
    except (DeploymentError, RuleFileError) as exc:
        reason = f"{len(exc.problems)} problem(s)" if isinstance(exc, RuleFileError) else exc
        print(
            f"note: the live version {registry.live} cannot be compiled here ({reason}); "
            "every rule shows as added",
            file=sys.stderr,
        )
        return None


def _cmd_rules_deploy(args: argparse.Namespace) -> int:
    """Compile, test, check versions against every stored version, then publish.

    Every check runs before anything is published, so a refused deploy leaves the topic
    untouched; each refusal says how to override it, and an override goes into the
    bundle's ``overrides`` for the audit trail.
    """
    from datetime import UTC, datetime

    from app.kafka import whoami
    from rules.deployments import compile_files, diff_rulesets, version_conflicts
    from schemas.deployment import RulesetBundle

    if args.force and not args.comment.strip():
        print("kairos: --force needs --comment saying why, for the history", file=sys.stderr)
        return EXIT_USAGE
    topic = _rules_topic(args)  # settings first: a misconfiguration is found before the work
    try:
        files, ruleset = compile_files(args.path)
    except RuleFileError as exc:
        return print_problems(exc)
    overrides = []
    if args.skip_tests:
        overrides.append("rule tests skipped (--skip-tests)")
    elif _run_rule_tests(args.path, ruleset, quiet=True) != 0:
        print(
            "rule tests failed; nothing deployed (fix them, or deploy with --skip-tests)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    registry = topic.read()
    if registry.live == ruleset.version:
        print(f"{ruleset.version} is already live on {topic.name}; nothing deployed")
        return 0
    conflicts = version_conflicts(ruleset, registry.compiled())
    for conflict in conflicts:
        print(f"{'override' if args.force else 'refused'}: {conflict}", file=sys.stderr)
    if conflicts and not args.force:
        print(
            f"{len(conflicts)} version problem(s); nothing deployed (bump the versions, or "
            "--force --comment WHY)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    overrides += conflicts
    diff = diff_rulesets(_live_ruleset(registry), ruleset)
    bundle = RulesetBundle(
        version=ruleset.version,
        files=files,
        deployed_at=datetime.now(UTC),
        deployed_by=args.by or whoami(),
        comment=args.comment,
        overrides=overrides,
    )
    pointer = topic.deploy(bundle, registry)
    print(f"Live: {pointer.version} (was {pointer.previous_version or 'nothing deployed'})")
    print("\n".join(diff.lines()))
    return 0


def _cmd_rules_rollback(args: argparse.Namespace) -> int:
    from app.kafka import whoami
    from rules.deployments import checked_rollback_target

    topic = _rules_topic(args)
    registry = topic.read()
    try:  # the console's rollback makes the same checks, with the same function
        target, _ = checked_rollback_target(registry, args.to)
    except RollbackError as exc:
        print(f"kairos: cannot roll back: {exc}", file=sys.stderr)
        return 1
    except RuleFileError as exc:  # validate first, as deploy does
        target = registry.rollback_target(args.to)
        print(f"kairos: cannot roll back: {target} does not compile here", file=sys.stderr)
        return print_problems(exc)
    pointer = topic.rollback(registry, args.by or whoami(), target)
    print(f"Live: {pointer.version} (rolled back from {pointer.previous_version})")
    return 0


def _rule_ids(bundle: RulesetBundle) -> str:
    from rules.deployments import compile_bundle

    try:
        return ", ".join(rule.id for rule in compile_bundle(bundle).rules)
    except RuleFileError as exc:
        return f"(does not compile here: {len(exc.problems)} problem(s))"


def _cmd_rules_list(args: argparse.Namespace) -> int:
    topic = _rules_topic(args)
    registry = topic.read()
    if registry.live is None:
        print(f"Nothing deployed on {topic.name}: workers run their bootstrap rules")
        return 0
    print(f"Live: {registry.live}")
    print("History (oldest first):")
    for pointer in registry.history:
        bundle = registry.bundles.get(pointer.version)
        comment = f' "{bundle.comment}"' if bundle and bundle.comment else ""
        rule_ids = _rule_ids(bundle) if bundle else "(bundle missing)"
        print(
            f"  {pointer.at.isoformat(timespec='seconds')}  {pointer.action.value:<8}  "
            f"{pointer.version}  by {pointer.by}{comment}\n      rules: {rule_ids}"
        )
    others = sorted(set(registry.bundles) - {p.version for p in registry.history})
    if others:
        print("Other stored versions (rollback --to VERSION):")
        for version in others:
            bundle = registry.bundles[version]
            print(
                f"  {version}  deployed {bundle.deployed_at.isoformat(timespec='seconds')} "
                f"by {bundle.deployed_by}\n      rules: {_rule_ids(bundle)}"
            )
    return 0


def _cmd_rules_diff(args: argparse.Namespace) -> int:
    from rules.deployments import compile_files, diff_rulesets

    try:
        _, ruleset = compile_files(args.path)
    except RuleFileError as exc:
        return print_problems(exc)
    topic = _rules_topic(args)
    registry = topic.read()
    if registry.live is None:
        print(f"Nothing deployed on {topic.name} yet; every rule is new to the registry")
    else:
        print(f"Deploying {args.path} ({ruleset.version}) instead of live {registry.live}:")
    diff = diff_rulesets(_live_ruleset(registry), ruleset)
    print("\n".join(diff.lines()))
    return 0


def _cmd_rules_test(args: argparse.Namespace) -> int:
    from rules.language.loader import load_ruleset

    try:
        ruleset = load_ruleset(args.path)
    except RuleFileError as exc:
        return print_problems(exc)
    return _run_rule_tests(args.path, ruleset, quiet=False)


def _run_rule_tests(path: Path, ruleset: Ruleset, *, quiet: bool) -> int:
    """Run the rule tests under ``path``; print them (only the failures when ``quiet``).

    A ruleset without tests passes with a note: a first campaign has none yet, and
    refusing it would only teach people to pass --skip-tests.
    """
    import rules.offline.testing as rule_testing

    results = rule_testing.run_all(path, ruleset)
    root = path if path.is_dir() else path.parent
    if not results:
        print(
            f"note: no rule tests in {root / 'tests'}/ (write *.yaml tests there: see "
            "docs/rules-guide.md)",
            file=sys.stderr,
        )
        return 0
    for result in results:
        if quiet and result.passed:
            continue
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.file}:{result.line}  {result.name}")
        for failure in result.failures:
            print(f"        {failure}")
    failed = sum(not r.passed for r in results)
    if not quiet:
        print()
    print(f"rule tests: {len(results) - failed} passed, {failed} failed")
    return EXIT_FAILURE if failed else 0


def _cmd_rules_schema(args: argparse.Namespace) -> int:
    from rules.language.file_schema import generate, write

    if args.out == "-":
        sys.stdout.write(generate())
    elif args.out:
        print(write(Path(args.out)))
    else:
        print(write())
    return 0
