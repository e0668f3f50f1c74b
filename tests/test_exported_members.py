"""Every package declares its public names, and they are exactly these.

As httpx pins its surface (``tests/test_exported_members.py``): a name added to or dropped
from a package's ``__all__`` is a change to what other packages may rely on, so it fails
here until this list says so. Each name must also resolve, and no package may export a
private name.
"""

from __future__ import annotations

import importlib

import pytest

EXPORTED: dict[str, set[str]] = {
    "schemas": {
        "EVENT_TYPES", "Action", "AppClick", "Channel", "Consent", "CustomerProfile",
        "CustomerState", "DeadLetter", "Decision", "DropOff", "Event", "EventBase",
        "InvalidEventError", "KairosError", "Outcome", "Reason", "Transaction",
        "derive_action_id",
    },
    "rules": {
        "CompiledRule", "EngineOptions", "Ruleset", "Verdict", "compile_sources", "decide",
        "dispatch", "load_ruleset",
    },
    "rules.language": {
        "ANY", "DATETIME", "DURATION_PATTERN", "NUMBER", "CompiledExpression", "Context",
        "Duration", "ExpressionError", "FieldType", "ParamsTooLargeError", "Renderer",
        "compile_expression", "parse_duration", "plain_yaml", "read_field",
    },
    "rules.engine": {
        "ACTION_PATHS", "ActionPath", "ActionTiming", "CustomerInput", "EngineOptions",
        "RmSettlement", "RuleFailure", "TimerChange",
        "Verdict", "apply_feedback", "apply_profile_update", "counter_key", "decide", "dispatch",
        "fire_due_timers", "fires_at", "handle_rm_capacity_full", "in_holdout",
        "settle_request", "update_profile",
    },
    "rules.offline": {"Backtest", "BacktestReport", "Replay", "compare"},
    "agents": {
        "AgentHealth", "EventProcessor", "InputMessage", "Metrics", "Processed",
        "RuntimeConfig", "is_ready",
    },
    "app": set(),
    "app.cli": {"EXIT_FAILURE", "EXIT_USAGE", "main", "parser"},
    "app.worker": {"build", "create_app", "run", "runtime_config"},
    "app.kafka": {
        "READ_TIMEOUT_S", "EmbeddedBroker", "RulesTopic", "WorkerProcess", "bootstrap_servers",
        "ensure_topics", "free_port", "read_to_end", "startup_ruleset", "terminate",
        "wait_for_broker", "whoami",
    },
    "app.backtest": {
        "BacktestInputError", "Responses", "TopicRangeSource", "counts_text", "render_diff",
        "render_table",
        "report_files", "run_backtest",
    },
    "app.synthetic": {
        "DEFAULT_START", "FUNNELS", "SCREENS", "JsonlSink", "KafkaSink", "Pacing", "Sink",
        "SyntheticConfig", "SyntheticRecord", "generate_profiles", "now_start",
        "poison_messages", "traffic", "write_traffic",
    },
    "app.demo": {"DemoOptions", "run_demo"},
    "app.console": {
        "WINDOWS", "CampaignDetail", "CampaignQueries", "CampaignRow", "Console", "StoreStatus",
        "Window", "create_app", "run_console",
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPORTED))
def test_the_package_exports_exactly_its_declared_names(package: str) -> None:
    module = importlib.import_module(package)
    declared = module.__all__
    assert len(declared) == len(set(declared)), f"{package}.__all__ repeats a name"
    assert set(declared) == EXPORTED[package]
    for name in declared:
        assert not name.startswith("_"), f"{package} exports the private name {name}"
        assert getattr(module, name) is not None


def test_every_package_is_pinned() -> None:
    """A new package under app/, agents/, rules/ or schemas/ must declare its names too."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    packages = {
        ".".join(init.parent.relative_to(root).parts)
        for top in ("app", "agents", "rules", "schemas")
        for init in (root / top).rglob("__init__.py")
    }
    assert packages == set(EXPORTED)
