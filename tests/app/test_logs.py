"""Worker logs: text or JSON lines, and neither ever shows a customer id or a secret."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from app.errors import ConfigurationError
from app.settings import Settings, load_settings
from app.worker import logs
from app.worker.log_redaction import REDACTED, Redactor, is_sensitive_name

TOKEN = "n0t-to-be-logged-Secret-1234"
SETTINGS = Settings(
    customer_api_token=TOKEN,
    app_id="kairos-test",
    web_advertised_host="kairos-worker-1",
    web_port=6066,
)


def _render(
    log_format: str,
    message: str,
    *args: object,
    extra: dict[str, Any] | None = None,
    exc: BaseException | None = None,
) -> str:
    """One record, as the worker's handler would write it in ``log_format``."""
    settings = SETTINGS.model_copy(update={"log_format": log_format})
    config = logs.logging_config(settings)
    formatter = config["formatters"]["kairos"]
    factory = formatter.pop("()")
    record = logging.LogRecord("agents.outputs", logging.WARNING, __file__, 1, message, args, None)
    if exc is not None:
        try:
            raise exc
        except BaseException:
            record.exc_info = sys.exc_info()
    for key, value in (extra or {}).items():
        setattr(record, key, value)
    rendered: str = factory(**formatter).format(record)
    return rendered


def test_a_json_line_is_valid_json_with_the_fields_sres_filter_on() -> None:
    line = _render("json", "Dead-lettered %s[%d]@%d", "kairos.events.app_click", 3, 12)
    assert "\n" not in line
    fields = json.loads(line)
    assert next(iter(fields)) == "timestamp"
    assert fields["timestamp"].endswith("+00:00")  # ISO 8601, UTC
    assert fields["level"] == "WARNING"
    assert fields["logger"] == "agents.outputs"
    assert fields["message"] == "Dead-lettered kairos.events.app_click[3]@12"
    assert fields["pid"] > 0
    assert fields["service"] == "kairos"
    assert fields["app_id"] == "kairos-test"
    assert fields["worker"] == "kairos-worker-1:6066"
    assert fields["hostname"]


def test_extra_fields_become_json_fields() -> None:
    extra = {"topic": "kairos.events.app_click", "partition": 3, "offset": 12}
    fields = json.loads(_render("json", "Dead-lettered", extra=extra))
    assert (fields["topic"], fields["partition"], fields["offset"]) == (
        "kairos.events.app_click",
        3,
        12,
    )


def test_a_traceback_is_one_json_field() -> None:
    fields = json.loads(_render("json", "failed", exc=ValueError("boom")))
    assert "ValueError: boom" in fields["exc_info"]


def test_the_text_format_is_fausts() -> None:
    line = _render("text", "Worker ready")
    assert line.startswith("[") and "[WARNING]" in line and "Worker ready" in line


#: Log text as libraries and careless calls produce it, and what must not survive.
LEAKS = [
    pytest.param("GET /customers/C-123456 failed", "C-123456", id="customer API path"),
    pytest.param("decided customer_id=C-123456 at step 3", "C-123456", id="customer_id="),
    pytest.param("state {'customer_id': 'C-123456', 'step': 3}", "C-123456", id="dict repr"),
    pytest.param(
        "ConsumerRecord(topic='kairos.events.app_click', partition=3, offset=12, "
        "key=b'C-123456', value=b'{\"step\": 3}')",
        "C-123456",
        id="Kafka record repr",
    ),
    pytest.param(f"Authorization: Bearer {TOKEN}", TOKEN, id="bearer header"),
    pytest.param(f"token={TOKEN[:12]}", TOKEN[:12], id="token="),
    pytest.param("connecting to kafka://alice:pa55w0rd@broker:9092", "pa55w0rd", id="URL password"),
    pytest.param(f"the settings said {TOKEN} somewhere", TOKEN, id="the configured secret"),
]


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(("message", "secret"), LEAKS)
def test_customer_ids_and_secrets_are_redacted_in_both_formats(
    log_format: str, message: str, secret: str
) -> None:
    line = _render(log_format, "%s", message)
    assert secret not in line
    assert REDACTED in line


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_is_redacted_too(log_format: str) -> None:
    line = _render(log_format, "lookup failed", exc=KeyError("customer_id=C-123456"))
    assert "C-123456" not in line and "KeyError" in line


def test_a_json_field_named_like_a_customer_id_is_hidden_whatever_its_value() -> None:
    fields = json.loads(_render("json", "x", extra={"customer_id": "42", "token": "t"}))
    assert fields["customer_id"] == REDACTED and fields["token"] == REDACTED


def test_what_is_not_sensitive_is_left_alone() -> None:
    redactor = Redactor([TOKEN])
    for text in (
        "Dead-lettered kairos.events.app_click[3]@12 (missing_field)",
        "Could not reach the owner of a customer's partition (ClientConnectorError)",
        "Starting consumer key_serializer=raw partition=3",
        "Indexed 12 customers with pending timers (generation 4)",
    ):
        assert redactor.redact(text) == text
    assert not is_sensitive_name("topic") and is_sensitive_name("customer_id")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was: ``configure_logging`` replaces its handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_configure_installs_one_redacting_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(SETTINGS.model_copy(update={"log_format": "json"}))
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]  # a StreamHandler
    logging.getLogger("aiohttp.client").warning("GET http://w2:6066/customers/C-9 failed")
    fields = json.loads(stream.getvalue())
    assert fields["logger"] == "aiohttp.client" and "C-9" not in fields["message"]
    assert logging.getLogger("kafka").level == logging.WARNING


def test_an_unknown_log_format_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIROS_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value) == "KAIROS_LOG_FORMAT: Input should be 'text' or 'json'"
    monkeypatch.setenv("KAIROS_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
