"""How a worker logs: one handler on stderr, text or JSON lines, always through the redactor.

``KAIROS_LOG_FORMAT=text`` (the default) keeps the lines Faust writes,
``[time] [pid] [LEVEL] message``; ``json`` writes one JSON object per line for a log
pipeline (Loki, Elasticsearch, Cloud Logging) to index without parsing text, using
python-json-logger. Either way every line goes through the same
:class:`~app.worker.log_redaction.Redactor`, so switching format never changes what is
hidden.

The JSON fields SREs filter on: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
``message``; the worker's identity — ``service``, ``app_id`` (the consumer group),
``worker`` (the host:port other workers and Prometheus know it by), ``hostname``, ``pid``;
``exc_info`` with a traceback; and whatever a log call passes as ``extra=`` (the
dead-letter line carries ``topic``, ``partition`` and ``offset``).

Faust's Worker sets logging up itself when it starts (clearing the root handlers);
:func:`logging_config` is handed to it so that it installs this configuration, and
:func:`configure_logging` applies the same one before, for the start-up lines.
"""

from __future__ import annotations

import logging
import logging.config
import socket
from typing import Any

from mode.utils.logging import DEFAULT_COLOR_FORMAT, DEFAULT_COLORS, ExtensionFormatter
from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter

from app.settings import LogFormat, Settings, secret_fields
from app.worker.log_redaction import Redactor

#: Record attributes every JSON line carries, by the names SREs filter on.
JSON_RECORD_FIELDS = {
    "levelname": "level",
    "name": "logger",
    "message": "message",
    "process": "pid",
}

#: Libraries too chatty at INFO: kafka-python only reads the rules topic at start-up.
QUIET_LOGGERS = {"kafka": "WARNING"}


class RedactingTextFormatter(logging.Formatter):
    """Faust's own text formatter (its format, colours on a terminal), then the redactor."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._inner = ExtensionFormatter(fmt=DEFAULT_COLOR_FORMAT, log_colors=DEFAULT_COLORS)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The whole line, traceback included, redacted."""
        return self._redactor.redact(self._inner.format(record))


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per record, every field redacted before it is serialised.

    Redacting the fields rather than the finished line means the patterns see the text as
    it was logged, not JSON-escaped, and a field named like a customer id or a secret
    (``extra={"customer_id": ...}``) is hidden whatever its value.
    """

    def __init__(self, redactor: Redactor, worker: dict[str, str]) -> None:
        super().__init__(
            list(JSON_RECORD_FIELDS),
            rename_fields={
                name: renamed for name, renamed in JSON_RECORD_FIELDS.items() if name != renamed
            },
            static_fields=dict(worker),
            timestamp=True,
        )
        self._redactor = redactor

    def process_log_record(self, log_data: LogData) -> LogData:
        """Redacted fields, the timestamp first (the order a reader scans them in)."""
        redacted = self._redactor.redact_fields(log_data)
        return {"timestamp": redacted.pop("timestamp"), **redacted}


def redactor_for(settings: Settings) -> Redactor:
    """A redactor that knows the configured secrets by value."""
    values = []
    for name in sorted(secret_fields(Settings)):
        secret = getattr(settings, name)
        if secret is not None:
            values.append(str(secret.get_secret_value()))
    return Redactor(values)


def identity(settings: Settings) -> dict[str, str]:
    """The fields that tell which worker wrote a JSON line, the same on every line."""
    host = settings.web_advertised_host or settings.web_host
    return {
        "service": "kairos",
        "app_id": settings.app_id,
        "worker": f"{host}:{settings.web_port}",
        "hostname": socket.gethostname(),
    }


def formatter(
    log_format: LogFormat, redactor: Redactor, worker: dict[str, str]
) -> logging.Formatter:
    """The formatter for ``KAIROS_LOG_FORMAT``; both redact with ``redactor``."""
    if log_format == "json":
        return RedactingJsonFormatter(redactor, worker)
    return RedactingTextFormatter(redactor)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A fresh :func:`logging.config.dictConfig` document for ``settings``.

    Fresh on every call: Faust's Worker edits the one it is given.
    """
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "kairos": {
                "()": formatter,
                "log_format": settings.log_format,
                "redactor": redactor_for(settings),
                "worker": identity(settings),
            }
        },
        # StreamHandler writes to stderr, where Faust's own handler writes.
        "handlers": {
            "kairos": {"class": "logging.StreamHandler", "formatter": "kairos", "level": level}
        },
        "root": {"level": level, "handlers": ["kairos"]},
        "loggers": {name: {"level": quiet} for name, quiet in QUIET_LOGGERS.items()},
    }


def configure_logging(settings: Settings) -> None:
    """Log as ``settings`` say, from now on, in this process."""
    logging.config.dictConfig(logging_config(settings))
