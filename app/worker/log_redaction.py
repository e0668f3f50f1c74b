"""The last net under the rule that a customer id or a secret never reaches a log.

The rule is kept where logs are written: log calls name the type of an error rather than
its text, a topic and offset rather than a key (``agents/outputs.py``,
``app/worker/web.py``). But the worker also logs what it does not write — Faust, aiokafka
and aiohttp messages, exception texts and tracebacks — and one of those may quote a record
key, a URL with a customer id in its path, or a broker URL with a password. Both log
formats (:mod:`app.worker.logs`) pass every rendered line or field through
:meth:`Redactor.redact`, so text and JSON logs hide the same things:

* every configured secret (the settings' secret fields, found from their annotations), by
  value, wherever it appears;
* the value after a secret-looking name (``token=…``, ``"password": "…"``,
  ``Authorization: Bearer …``) and the password in ``scheme://user:password@host``;
* the value after a customer-id name (``customer_id=…``, ``'customer_id': '…'``), a
  ``/customers/<id>`` path, and the ``key=b'…'`` / ``value=b'…'`` of a Kafka record's repr
  (the key is the customer id, the value their event).

Customer ids have no recognisable shape (any non-empty string), so only where they appear
can be recognised, never the ids themselves: this net catches the usual ways libraries
print them, not a log call that writes one bare. That one is a bug to fix at the call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

#: What replaces a hidden value.
REDACTED = "[redacted]"

#: Names whose value is a secret, in any case, as ``name=value`` or ``"name": "value"``.
SECRET_NAMES = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "sasl_plain_password",
    "customer_api_token",
)
#: Names whose value is a customer id.
CUSTOMER_NAMES = ("customer_id", "customerid", "customer")

#: A shorter configured secret would match inside ordinary words; settings refuse them.
MIN_SECRET_LENGTH = 8

_NAMES = "|".join(re.escape(name) for name in (*SECRET_NAMES, *CUSTOMER_NAMES))
#: ``name=value``, ``name: value``, ``"name": "value"``, ``'name': b'value'``; the value is
#: a quoted string (any quote, optional ``b`` prefix) or a run of non-separators.
_NAMED_VALUE = re.compile(
    rf"""(?P<name>["']?\b(?:\w*_)?(?:{_NAMES})\b["']?\s*[=:]\s*)"""
    r"""(?P<value>b?"(?:[^"\\]|\\.)*"|b?'(?:[^'\\]|\\.)*'|[^\s,;&)}\]"']+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<scheme>\bbearer\s+)[^\s,;\"']+", re.IGNORECASE)
_AUTHORIZATION = re.compile(
    r"(?P<name>\bauthorization\b[\"']?\s*[=:]\s*[\"']?(?:(?:bearer|basic|digest)\s+)?)"
    r"[^\s,;\"']+",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?=@)", re.IGNORECASE
)
_CUSTOMER_PATH = re.compile(r"(?P<path>/customers/)[^\s/?#\"']+")
_RECORD_FIELD = re.compile(
    r"(?P<name>\b(?:key|value)=)b?(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)
_SENSITIVE_KEY = re.compile(rf"^(?:\w*_)?(?:{_NAMES})$", re.IGNORECASE)


class Redactor:
    """Hides secrets and customer ids in log text; one per process, shared by both formats."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = sorted(
            {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH},
            key=len,
            reverse=True,
        )

    def redact(self, text: str) -> str:
        """``text`` with every secret and customer id this module recognises hidden."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", text)
        text = _BEARER.sub(rf"\g<scheme>{REDACTED}", text)
        text = _AUTHORIZATION.sub(rf"\g<name>{REDACTED}", text)
        text = _CUSTOMER_PATH.sub(rf"\g<path>{REDACTED}", text)
        text = _RECORD_FIELD.sub(rf"\g<name>{REDACTED}", text)
        return _NAMED_VALUE.sub(rf"\g<name>{REDACTED}", text)

    def redact_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON log's fields, with sensitive names' values hidden and every text redacted.

        Field names come from a log call's ``extra=``: ``extra={"customer_id": ...}`` is
        hidden by its name, whatever the value looks like.
        """
        return {
            key: REDACTED if is_sensitive_name(key) else self._redact_value(value)
            for key, value in fields.items()
        }

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return self.redact_fields({str(key): item for key, item in value.items()})
        if isinstance(value, list | tuple | set | frozenset):
            return [self._redact_value(item) for item in value]
        if isinstance(value, bool | int | float | datetime | date) or value is None:
            return value
        # Anything else is serialised by its text: redact that text, not the object.
        return self.redact(str(value))


def is_sensitive_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret or a customer id."""
    return bool(_SENSITIVE_KEY.match(name))
