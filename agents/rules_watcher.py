"""Follow the rules topic and swap each newly deployed ruleset into the running worker.

Every worker must run the live version, whichever partitions it owns, so the watcher reads
the single-partition rules topic with its own consumer and no consumer group (a group would
share the partition out to one worker only). It reads from the beginning because the bundles
of every version live there, and acts on the live pointer only once it has caught up with the
topic, so a worker replaying old deploys never runs an outdated ruleset even for a moment.

A bundle that does not compile (``kairos rules deploy`` validates first, so this means a
newer or older Kairos wrote it, or someone bypassed the CLI) is refused: the problems are
logged, ``kairos_ruleset_rejected_total`` counts it and the running ruleset stays in force.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agents.config import RULES_FETCH_MAX_WAIT_MS, RuntimeConfig
from agents.metrics import Metrics
from agents.processor import EventProcessor
from rules.deployments import Registry, compile_bundle
from rules.errors import DeploymentError, RuleFileError

log = logging.getLogger(__name__)

_POLL_TIMEOUT_MS = 1000
_RETRY_AFTER_S = 2.0


class RulesWatcher:
    """Reads the rules topic for the life of the worker and applies live-pointer changes."""

    def __init__(
        self, bootstrap: list[str], topic: str, processor: EventProcessor, metrics: Metrics
    ) -> None:
        self.bootstrap = bootstrap
        self.partition = TopicPartition(topic, 0)
        self.processor = processor
        self.metrics = metrics
        # The pointer version acted on last (swapped in or refused), so that one pointer is
        # acted on once: start-up already runs the live version, if there is one.
        self.applied = processor.ruleset.version

    async def run(self) -> None:
        """Follow the topic until cancelled (the worker stopping); survive broker hiccups."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never let a broker error end the task silently: a worker that stopped
                # following deploys would keep contacting customers for stopped campaigns.
                log.exception(
                    "Lost the rules topic %s; retrying in %.0fs",
                    self.partition.topic,
                    _RETRY_AFTER_S,
                )
                await asyncio.sleep(_RETRY_AFTER_S)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="kairos-rules-watcher",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=RULES_FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        try:
            consumer.assign([self.partition])
            await consumer.seek_to_beginning(self.partition)
            registry = Registry()  # rebuilt from the start on every (re)connection
            while True:
                batch = await consumer.getmany(self.partition, timeout_ms=_POLL_TIMEOUT_MS)
                for record in batch.get(self.partition, []):
                    registry.add(record.key, record.value)
                highwater = consumer.highwater(self.partition)
                if highwater is not None and await consumer.position(self.partition) >= highwater:
                    self.apply(registry)
        finally:
            await consumer.stop()

    def apply(self, registry: Registry) -> None:
        """Swap in the live version if it changed; refuse a bundle that is missing or bad."""
        live = registry.live
        if live is None or live == self.applied:
            return
        self.applied = live
        try:
            ruleset = compile_bundle(registry.bundle(live))
        except DeploymentError as exc:
            self.metrics.ruleset_rejected.inc()
            log.error("Refused deployed ruleset %s: %s", live, exc)
            return
        except RuleFileError as exc:
            self.metrics.ruleset_rejected.inc()
            log.error(
                "Refused deployed ruleset %s; still running %s. %s",
                live,
                self.processor.ruleset.version,
                exc,
            )
            return
        previous = self.processor.ruleset.version
        if ruleset.version == previous:
            log.info("Deployed ruleset %s is already running", live)
            return
        self.processor.swap_ruleset(ruleset)
        self.metrics.ruleset_swaps.inc()
        log.info(
            "Swapped in ruleset %s (%d rules), replacing %s",
            ruleset.version,
            len(ruleset.rules),
            previous,
        )


def install(
    app: faust.App, config: RuntimeConfig, processor: EventProcessor, metrics: Metrics
) -> RulesWatcher:
    """Run a :class:`RulesWatcher` as a Faust task: started with the app, cancelled with it."""
    watcher = RulesWatcher(list(config.bootstrap), config.topics.rules, processor, metrics)

    async def follow_deployed_rules() -> None:
        await watcher.run()

    app.task(follow_deployed_rules)
    return watcher
