"""``kairos worker``: the production entry point, one Faust worker process."""

from __future__ import annotations

import logging

import faust

from app import web
from app.clock import clock_from
from app.faust_app import create_app
from app.metrics import Metrics
from app.rules_registry import startup_ruleset
from app.settings import Settings

log = logging.getLogger(__name__)
_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


def build(settings: Settings) -> tuple[faust.App, Metrics]:
    """The app with its agents, rules watcher and web views; refuses a bad ruleset up front.

    The starting ruleset is the one deployed live on the rules topic, or the bootstrap rules
    at ``KAIROS_RULES_PATH`` when nothing was ever deployed; later deploys are swapped in by
    the rules watcher without a restart.
    """
    from agents import pipeline, rules_watcher  # wiring layer: imported here so app/ stands alone

    ruleset = startup_ruleset(settings)
    app = create_app(settings)
    metrics = Metrics()
    installed = pipeline.install(app, settings, ruleset, metrics, clock_from(settings))
    rules_watcher.install(app, settings, installed.processor, metrics)
    web.install(app, metrics)
    return app, metrics


def run(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM; Faust's Worker handles the signals."""
    # Faust configures logging only once its Worker runs (replacing these handlers); until
    # then this makes start-up visible, such as which ruleset the worker starts with.
    logging.basicConfig(level=settings.log_level.upper(), format=_LOG_FORMAT)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python: the start-up read only
    app, _ = build(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
