"""The one error tree of Kairos.

Every error Kairos raises on purpose derives from :class:`KairosError`, so callers
can tell our failures from library bugs with a single ``except``::

    KairosError
    ├── InvalidEventError      poison input: goes to the dead-letter topic, never retried
    ├── StateCorruptError      a stored customer state cannot be read back
    ├── (rules.errors)         RuleError, RuleFileError, DeploymentError, RollbackError;
    │                          ExpressionError and ParamsTooLargeError in rules.language
    └── (app.errors)           ConfigurationError, BrokerError; the Kafka tools' errors

The base lives in ``schemas`` because that package imports nothing of ours, so every other
package may derive from it without a cycle; each package keeps the errors it raises (a rule
file's problems are not part of the wire contract), drawing its branch in its docstring.
"""

from __future__ import annotations


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


class StateCorruptError(KairosError):
    """A stored customer state cannot be read back.

    Raised, not skipped: deciding on an empty state would forget consents, caps and
    cooldowns and contact the customer as a stranger. Restore the table from its changelog
    (delete the worker's local state directory) to recover.
    """
