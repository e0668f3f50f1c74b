"""The one typed settings object, read from ``KAIROS_*`` environment variables.

Built once at start-up and passed explicitly; :func:`app.faust_app.faust_settings` is the
single place it is translated into Faust's own configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules" / "examples"


class Settings(BaseSettings):
    """Worker configuration. Every field is ``KAIROS_<NAME>`` in the environment."""

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
        description="exactly_once uses Kafka transactions (Apache Kafka only; Tansu has none).",
    )
    app_id: str = Field(default="kairos", description="Consumer group and changelog prefix.")
    topic_prefix: str = Field(default="kairos", description="Prefix of every topic name.")
    partitions: int = Field(default=4, ge=1, description="Partitions of every Kairos topic.")
    replication_factor: int = Field(default=1, ge=1)
    rules_path: Path = Field(default=EXAMPLE_RULES, description="Directory of rule files.")
    state_dir: Path = Field(default=Path("var/state"), description="RocksDB state directory.")
    web_host: str = Field(default="127.0.0.1", description="Interface the web server binds.")
    web_port: int = Field(default=6066, ge=1, le=65535)
    session_timeout_s: float = Field(
        default=6.0,
        gt=0,
        description="Group session timeout. Short = fast failover and fast first join.",
    )
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    commit_interval_s: float = Field(
        default=0.5, gt=0, description="Offset commit interval: bounds re-processing after a crash."
    )
    allowed_lateness_s: float = Field(
        default=600.0,
        ge=0,
        description="Events this far behind a customer's newest still update windowed features.",
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

    @model_validator(mode="after")
    def _supported_by_the_broker(self) -> Settings:
        if self.broker_flavor == "tansu" and self.processing_guarantee == "exactly_once":
            raise ValueError(
                "KAIROS_PROCESSING_GUARANTEE=exactly_once needs Kafka transactions, which the "
                "embedded Tansu broker does not have; use at_least_once (the default) with it"
            )
        return self
