"""The one error tree of Kairos.

Every error Kairos raises on purpose derives from :class:`KairosError`, so callers
can tell our failures from library bugs with a single ``except``::

    KairosError
    ├── InvalidEventError      poison input: goes to the dead-letter topic, never retried
    ├── RuleError              a rule file is wrong: the running ruleset stays in force
    │   └── RuleFileError      one or more problems, each with file, line and column
    ├── ConfigurationError     settings that cannot work (caught at start-up)
    ├── BrokerError            the embedded broker is missing or would not start
    └── DeploymentError        the rules topic is unreachable, or its live version unusable
        └── RollbackError      there is no version to roll back to

It lives in ``schemas`` because that package imports nothing of ours, so every other
package may import it without creating a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass


class KairosError(Exception):
    """Base of every error Kairos raises deliberately."""


class InvalidEventError(KairosError):
    """An input message that can never be processed, whatever we retry.

    It keeps the raw bytes because the dead-letter record must let an operator
    replay or repair exactly what the producer sent.
    """

    def __init__(self, reason: str, raw: bytes, *, error_type: str = "invalid_event") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.error_type = error_type


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a rule file, located precisely enough to fix it."""

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class RuleError(KairosError):
    """Base of errors about rules."""


class RuleFileError(RuleError):
    """A ruleset was refused; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the rules:\n{lines}")


class ConfigurationError(KairosError):
    """Settings that cannot work together."""


class BrokerError(KairosError):
    """The embedded broker could not be found or started."""


class DeploymentError(KairosError):
    """The rules topic could not be read or written, or its live version cannot be used.

    Raised to the ``kairos rules`` commands and at worker start-up: a worker that cannot
    tell which rules are live must not guess (an outdated ruleset contacts customers for
    campaigns that marketing ops already stopped).
    """


class RollbackError(DeploymentError):
    """A rollback was asked for but there is no earlier version it could return to."""


class StateCorruptError(KairosError):
    """A stored customer state cannot be read back.

    Raised, not skipped: deciding on an empty state would forget consents, caps and
    cooldowns and contact the customer as a stranger. Restore the table from its changelog
    (delete the worker's local state directory) to recover.
    """
