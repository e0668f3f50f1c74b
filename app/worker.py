"""``kairos worker``: the production entry point, one Faust worker process."""

from __future__ import annotations

import logging

import faust

from app import web
from app.faust_app import create_app
from app.metrics import Metrics
from app.settings import Settings
from rules.loader import load_ruleset

log = logging.getLogger(__name__)


def build(settings: Settings) -> tuple[faust.App, Metrics]:
    """The app with its agents and web views installed; refuses a bad ruleset up front."""
    from agents import pipeline  # the wiring layer: imported here so app/ stays importable alone

    ruleset = load_ruleset(settings.rules_path)
    app = create_app(settings)
    metrics = Metrics()
    pipeline.install(app, settings, ruleset, metrics)
    web.install(app, metrics)
    log.info(
        "Loaded ruleset %s (%d rules) from %s",
        ruleset.version,
        len(ruleset.rules),
        settings.rules_path,
    )
    return app, metrics


def run(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM; Faust's Worker handles the signals."""
    app, _ = build(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
