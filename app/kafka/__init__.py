"""Talking to the broker from outside a worker: topics, the rules topic, local processes.

Synchronous (kafka-python) clients for the command line and for worker start-up — creating
topics, reading topics to their end, publishing and reading deployed rulesets — and the
child processes the demo and the tests run: the embedded Tansu broker and ``kairos worker``.
"""

from app.kafka.admin import ensure_topics, wait_for_broker
from app.kafka.broker import EmbeddedBroker, free_port
from app.kafka.processes import WorkerProcess, terminate
from app.kafka.rules_topic import (
    READ_TIMEOUT_S,
    RulesTopic,
    bootstrap_servers,
    startup_ruleset,
    whoami,
)
from app.kafka.topic_reader import read_to_end

__all__ = [
    "READ_TIMEOUT_S",
    "EmbeddedBroker",
    "RulesTopic",
    "WorkerProcess",
    "bootstrap_servers",
    "ensure_topics",
    "free_port",
    "read_to_end",
    "startup_ruleset",
    "terminate",
    "wait_for_broker",
    "whoami",
]
