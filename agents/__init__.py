"""The Faust runtime: the agents, their tables and timers, and what they need to run.

Imports ``rules/`` and ``schemas/`` only (and libraries); ``app/`` assembles a worker from
these parts with a :class:`~agents.config.RuntimeConfig` built from its settings.
"""

from agents.config import RuntimeConfig
from agents.health import AgentHealth, is_ready
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed

__all__ = [
    "AgentHealth",
    "EventProcessor",
    "InputMessage",
    "Metrics",
    "Processed",
    "RuntimeConfig",
    "is_ready",
]
