"""The one typed settings object, read from ``KAIROS_*`` environment variables.

Built once at start-up (:func:`load_settings`) and passed explicitly;
:func:`app.worker.faust_app.faust_settings` is the single place it is translated into
Faust's own configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    HttpUrl,
    Secret,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from app.errors import ConfigurationError

#: A guessable token would expose personal data; 16 random characters is the floor.
MIN_TOKEN_LENGTH = 16
EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules" / "examples"
#: ``KAIROS_LOG_FORMAT``: Faust's text lines, or one JSON object per line (app/worker/logs.py).
LogFormat = Literal["text", "json"]
#: The operations guide on the project's public repository (pyproject.toml's
#: ``[project.urls]``): what alert links open unless ``KAIROS_RUNBOOK_BASE_URL`` says
#: otherwise, e.g. a copy on the bank's intranet.
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/kairos-oss/kairos/blob/main/docs/operations.md"


class Settings(BaseSettings):
    """Worker and console configuration. Every field is ``KAIROS_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="KAIROS_", frozen=True, extra="ignore")

    broker_url: str = Field(
        default="kafka://127.0.0.1:9092", description="Faust broker URL(s), ';'-separated."
    )
    broker_flavor: Literal["kafka", "tansu"] = Field(
        default="kafka",
        description="'tansu' turns on the embedded broker's accommodations; never in production.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="Only at_least_once: outputs and state leave through the worker's own "
        "checkpoint, which Faust's transactions (exactly_once) would not cover.",
    )
    app_id: str = Field(default="kairos", description="Consumer group and changelog prefix.")
    topic_prefix: str = Field(default="kairos", description="Prefix of every topic name.")
    partitions: int = Field(default=4, ge=1, description="Partitions of every Kairos topic.")
    replication_factor: int = Field(default=1, ge=1)
    rules_path: Path = Field(default=EXAMPLE_RULES, description="Directory of rule files.")
    state_dir: Path = Field(default=Path("var/state"), description="RocksDB state directory.")
    tansu_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=1500,
        description="Embedded broker only: Tansu holds every fetch this long even when data "
        "is there, so it is the latency of each hop (Apache Kafka answers at once).",
    )
    rocksdb_block_cache_mb: int = Field(
        default=64,
        ge=1,
        description="RocksDB block cache per table partition. Faust's default is 2 GiB per "
        "partition: a worker scanning a million customers grew from 389 MiB to 3.7 GiB.",
    )
    web_host: str = Field(default="127.0.0.1", description="Interface the web server binds.")
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_advertised_host: str | None = Field(
        default=None,
        description="Host other workers use to reach this one (customer API routing); "
        "defaults to web_host. Set it when binding 0.0.0.0, e.g. to the container name.",
    )
    customer_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /customers/{id}. Unset (the default) turns the "
        "endpoint off: it serves personal data.",
    )
    console_host: str = Field(
        default="127.0.0.1",
        description="Interface the console (`kairos console`) binds: loopback unless an "
        "operator chooses otherwise, since its pages show campaign results and one customer.",
    )
    console_port: int = Field(default=6070, ge=1, le=65535)
    console_token: SecretStr | None = Field(
        default=None,
        description="Sign-in token of the console (shared); with KAIROS_CONSOLE_USERS_FILE "
        "unset too, the console refuses to start.",
    )
    console_users_file: Path | None = Field(
        default=None,
        description="File of 'user:hash' lines for personal sign-in; each hash from "
        "`kairos console hash-password` (scrypt).",
    )
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Key signing the console's session cookies. Unset: a random key per "
        "process, so a restart signs everyone out; set the same one on every console behind "
        "one address.",
    )
    console_cookie_secure: bool = Field(
        default=False,
        description="Mark session cookies Secure (sent over HTTPS only): set it whenever the "
        "console is served through TLS.",
    )
    console_store_path: Path = Field(
        default=Path("var/console/console.duckdb"),
        description="The console's DuckDB store; rebuilt from the topics if deleted.",
    )
    console_customer_id_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key the store hashes customer ids with. Unset: generated once and "
        "kept in 'customer-id.key' beside the store (mode 0600).",
    )
    console_worker_urls: str = Field(
        default="http://127.0.0.1:6066",
        description="Base URL(s) of workers' web servers, ';'-separated: the customer page "
        "asks them (with KAIROS_CUSTOMER_API_TOKEN), the next one when one is down.",
    )
    console_audit_topic: str | None = Field(
        default=None,
        description="Where customer look-ups are audited; default '<prefix>.console-audit', "
        "which `kairos topics ensure` creates.",
    )
    console_group_id: str = Field(
        default="kairos-console",
        description="The console's own consumer group: it never takes partitions from workers.",
    )
    console_refresh_s: float = Field(
        default=5.0, gt=0, le=3600, description="How often the console's pages refresh."
    )
    console_backtest_dir: Path | None = Field(
        default=None,
        description="The folder of backtests the console lists and opens (each a "
        "`kairos backtest --out` folder; its own runs are written there too). Only folders "
        "directly in it are opened. Unset: 'backtests' beside the console's store.",
    )
    console_backtest_upload_max_mb: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Largest upload (events and profiles together, in MiB) the console's "
        "backtest page accepts; larger inputs are for `kairos backtest` on the command line.",
    )
    lag_interval_s: float = Field(
        default=10.0, gt=0, description="How often consumer lag is read from the broker."
    )
    session_timeout_s: float = Field(
        default=6.0,
        gt=0,
        description="Group session timeout. Short = fast failover and fast first join.",
    )
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    commit_interval_s: float = Field(
        default=0.5, gt=0, description="Offset commit interval: bounds re-processing after a crash."
    )
    batch_max_messages: int = Field(
        default=500,
        ge=1,
        description="Messages decided together: their outputs are acknowledged once and each "
        "customer's state is written once per batch.",
    )
    batch_window_s: float = Field(
        default=0.01,
        gt=0,
        description="How long a lone event waits for others to decide with (light traffic "
        "only: a fetch of several is decided at once).",
    )
    gc_threshold: int = Field(
        default=5_000,
        ge=700,
        description="Allocations between young-generation garbage collections (Python's "
        "default is 700). Each pauses the worker for about a microsecond per young object: "
        "5,000 keeps pauses near 7 ms; older generations are collected only every "
        "KAIROS_GC_FULL_INTERVAL_S.",
    )
    gc_full_interval_s: float = Field(
        default=300.0,
        ge=1,
        description="Seconds between full garbage collections, which free reference cycles "
        "among older objects: one pause of about a microsecond per live object (0.1-0.2 s "
        "for 2,000 busy customers), minutes apart; kairos_gc_full_seconds shows each.",
    )
    checkpoint_interval_s: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="Seconds of batches one checkpoint holds (0: each batch is one): a customer "
        "changed in several is encoded and written once. Contacts never wait for it; state "
        "storage and offset commits do.",
    )
    state_cache_customers: int = Field(
        default=10_000,
        ge=1,
        description="Customers whose decoded state a worker keeps in memory between batches "
        "(least recently used evicted beyond it; ~23 KiB each for a month of history, "
        "~230 MiB at the default); the rest are read from RocksDB.",
    )
    max_message_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Input messages larger than this are dead-lettered unparsed (too_large).",
    )
    allowed_lateness_s: float = Field(
        default=600.0,
        ge=0,
        description="Events this far behind a customer's newest still update windowed features.",
    )
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="Event times further ahead of the clock do not move a customer's watermark.",
    )
    timer_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="Absence timers fire this long after due, so a late exit event still counts.",
    )
    timer_check_interval_s: float = Field(
        default=1.0, gt=0, description="How often the scheduler looks for due timers."
    )
    clock_origin: AwareDatetime | None = Field(
        default=None,
        description="Demo only: simulated time at clock_wall_origin; unset means real time.",
    )
    clock_wall_origin: float = Field(default=0.0, description="Demo only: Unix time of origin.")
    clock_speed: float = Field(default=1.0, gt=0, description="Demo only: simulated s per real s.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: LogFormat = Field(
        default="text",
        description="text: Faust's lines; json: one JSON object per line for a log pipeline "
        "(app/worker/logs.py). Both are redacted the same way.",
    )
    runbook_base_url: HttpUrl = Field(
        default=HttpUrl(DEFAULT_RUNBOOK_BASE_URL),
        description="Where the alerts' runbook links point (`kairos ops alerts` renders "
        "the alert rules with it): the operations guide, each alert's section appended "
        "as #<alert name in lower case>.",
    )

    @field_validator(
        "customer_api_token",
        "console_token",
        "console_session_secret",
        "console_customer_id_secret",
        "console_users_file",
        "console_audit_topic",
        "console_backtest_dir",
        mode="before",
    )
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        """``KAIROS_CUSTOMER_API_TOKEN=`` (as compose passes an unset variable) means off."""
        return None if value == "" else value

    @field_validator(
        "customer_api_token",
        "console_token",
        "console_session_secret",
        "console_customer_id_secret",
    )
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("runbook_base_url")
    @classmethod
    def _no_fragment(cls, value: HttpUrl) -> HttpUrl:
        if value.fragment is not None:
            raise ValueError(
                "must not have a #fragment: each alert's section is appended to it as one"
            )
        return value

    @model_validator(mode="after")
    def _supported_guarantee(self) -> Settings:
        if self.processing_guarantee == "exactly_once":
            raise ValueError(
                "KAIROS_PROCESSING_GUARANTEE=exactly_once is not supported: the worker sends "
                "its outputs and state through its own checkpoint (acknowledged before state "
                "and offsets move, deterministic ids), which Faust's Kafka transactions would "
                "not cover; use at_least_once (the default): channels de-duplicate on action_id"
            )
        return self


def load_settings() -> Settings:
    """The settings from the environment, or one line saying which variable is wrong.

    Every command builds its settings here, so an operator always gets the same answer:
    the ``KAIROS_*`` variable to fix and why, never pydantic's report, which names the
    Python field and echoes each input value (a customer API token included).

    Raises:
        ConfigurationError: a variable is invalid, or the variables contradict each other.

    """
    try:
        return Settings()
    except ValidationError as exc:
        # ``from None``: the chained ValidationError carries every input value, secrets
        # included, and would print them in any traceback that logs this error.
        raise configuration_error(exc, Settings) from None
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        raise ConfigurationError(f"settings: {exc}") from None


def configuration_error(exc: ValidationError, model: type[BaseModel]) -> ConfigurationError:
    """One line per the house rule: ``KAIROS_X: why; KAIROS_Y: why``, no input values.

    Only pydantic's message is used, never its ``input``; a message that still contains the
    text of a secret (a validator that quotes its value) is replaced whole rather than
    edited, because a short secret could hide anywhere in the wording.
    """
    secrets = _secret_texts(exc, model)
    parts = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        message = _without_prefix(error["msg"])
        if any(secret in message for secret in secrets):
            message = "invalid value (not shown: it is a secret)"
        loc = error["loc"]
        name = str(loc[0]) if loc else None
        # A model-level error has no field; its message names the variables it is about.
        parts.append(f"{env_name(model, name)}: {message}" if name else message)
    return ConfigurationError("; ".join(parts))


def env_name(model: type[BaseModel], field: str) -> str:
    """The environment variable a field is read from (``partitions`` -> KAIROS_PARTITIONS)."""
    info = model.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias.upper()
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields whose annotation is a pydantic secret, alone or inside ``| None``/``Annotated``.

    Found from the annotations rather than listed, so a secret added later is protected
    without anyone remembering to register it.
    """
    return frozenset(
        name for name, info in model.model_fields.items() if _is_secret(info.annotation)
    )


def _is_secret(annotation: Any) -> bool:
    kind = get_origin(annotation) or annotation  # ``Secret[int]`` is an alias of Secret
    if isinstance(kind, type) and issubclass(kind, SecretStr | SecretBytes | Secret):
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _secret_texts(exc: ValidationError, model: type[BaseModel]) -> set[str]:
    """The raw text of every secret the failed validation was given."""
    secret = secret_fields(model)
    texts: set[str] = set()
    for error in exc.errors(include_url=False, include_context=False):
        loc, value = error["loc"], error.get("input")
        if loc and loc[0] in secret:
            texts.add(_text(value))
        elif not loc and isinstance(value, Mapping):  # a model validator sees every input
            texts.update(_text(value[name]) for name in secret if name in value)
    texts.discard("")
    return texts


def _text(value: object) -> str:
    if isinstance(value, SecretStr | SecretBytes | Secret):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _without_prefix(message: str) -> str:
    """Drop pydantic's "Value error, " before a validator's own sentence."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message
