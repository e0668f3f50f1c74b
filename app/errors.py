"""Errors of the composition root: settings that cannot work, a broker that would not start.

Its branch of the one error tree (the base is :class:`schemas.errors.KairosError`)::

    KairosError
    ├── ConfigurationError      settings that cannot work (caught at start-up; exit 2)
    ├── BrokerError             the embedded broker is missing or would not start
    ├── TopicAdminError         topics could not be created or checked (app.kafka.admin)
    │   └── BrokerUnreachableError  no broker answered within --timeout
    ├── TopicReadError          a topic could not be read (app.kafka.topic_reader)
    ├── WorkerStartError        a worker exited or was not ready in time (app.kafka.processes)
    ├── AlertRulesError         unreadable alert rules or runbook links (app.runbooks)
    └── BacktestInputError      a backtest's input file is missing (app.backtest.run)
"""

from __future__ import annotations

from schemas.errors import KairosError


class ConfigurationError(KairosError):
    """Settings that cannot work together."""


class BrokerError(KairosError):
    """The embedded broker could not be found or started."""
