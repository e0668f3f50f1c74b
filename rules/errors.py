"""Errors about rules: a rule file refused, a deployment unusable.

Its branch of the one error tree (the base is :class:`schemas.errors.KairosError`)::

    KairosError
    ├── RuleError               a rule is wrong: the running ruleset stays in force
    │   ├── RuleFileError       one or more problems, each with file, line and column
    │   ├── HolidayCalendarError a policy names a holiday calendar the library lacks
    │   └── ParamsTooLargeError rendered params over their limit (rules.language.params)
    ├── ExpressionError         a condition or placeholder that does not compile
    └── DeploymentError         the rules topic is unreachable, or its live version unusable
        └── RollbackError       there is no version to roll back to
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import KairosError


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


class HolidayCalendarError(RuleError, ValueError):
    """The policy names a country or subdivision the ``holidays`` library has no calendar for.

    A ``ValueError`` too, so that the policy model reports it as a problem at the line
    that names the calendar, like any other wrong value in a rule file.
    """


class DeploymentError(KairosError):
    """The rules topic could not be read or written, or its live version cannot be used.

    Raised to the ``kairos rules`` commands and at worker start-up: a worker that cannot
    tell which rules are live must not guess (an outdated ruleset contacts customers for
    campaigns that marketing ops already stopped).
    """


class RollbackError(DeploymentError):
    """A rollback was asked for but there is no earlier version it could return to."""
