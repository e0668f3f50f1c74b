from __future__ import annotations

import os
from typing import Annotated

import pytest
from pydantic import Field, Secret, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigurationError
from app.settings import Settings, configuration_error, env_name, load_settings, secret_fields


@pytest.mark.parametrize("flavor", ["tansu", "kafka"])
def test_exactly_once_is_refused_since_the_checkpoint_is_outside_transactions(
    flavor: str,
) -> None:
    with pytest.raises(ValidationError, match="not supported: the worker sends"):
        Settings(broker_flavor=flavor, processing_guarantee="exactly_once")


def test_settings_come_from_kairos_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIROS_TOPIC_PREFIX", "bank1")
    monkeypatch.setenv("KAIROS_PARTITIONS", "12")
    settings = Settings()
    assert (settings.topic_prefix, settings.partitions) == ("bank1", 12)
    monkeypatch.setenv("KAIROS_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


@pytest.fixture
def no_kairos_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KAIROS_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_kairos_environment")
def test_load_settings_names_every_wrong_variable_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings() == Settings()
    monkeypatch.setenv("KAIROS_PARTITIONS", "0")
    monkeypatch.setenv("KAIROS_LOG_LEVEL", "loud")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value) == (
        "KAIROS_PARTITIONS: Input should be greater than or equal to 1; "
        "KAIROS_LOG_LEVEL: Input should be 'debug', 'info', 'warning' or 'error'"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


class _Vault(BaseSettings):
    """Secrets in every shape an annotation can take, one validator that quotes its input."""

    model_config = SettingsConfigDict(env_prefix="VAULT_")

    password: SecretStr
    pin: Annotated[SecretStr | None, Field(min_length=4)] = None
    key: Secret[int] | None = None
    colour: str = "blue"
    size: int = 1

    @field_validator("password")
    @classmethod
    def _careless(cls, value: SecretStr) -> SecretStr:
        raise ValueError(f"{value.get_secret_value()!r} is a dictionary word")


def test_secret_fields_are_found_from_their_annotations() -> None:
    assert secret_fields(_Vault) == {"password", "pin", "key"}
    assert secret_fields(Settings) == {
        "customer_api_token",
        "console_token",
        "console_session_secret",
        "console_customer_id_secret",
    }


def test_a_secret_quoted_by_a_validator_is_not_repeated() -> None:
    with pytest.raises(ValidationError) as caught:
        _Vault(password="hunter2", pin="123", size="big")  # type: ignore[arg-type]
    message = str(configuration_error(caught.value, _Vault))
    assert "hunter2" not in message and "123" not in message and "big" not in message
    parts = message.split("; ")
    assert parts[0] == "VAULT_PASSWORD: invalid value (not shown: it is a secret)"
    assert [part.split(":")[0] for part in parts] == ["VAULT_PASSWORD", "VAULT_PIN", "VAULT_SIZE"]


def test_env_name_follows_the_prefix() -> None:
    assert env_name(Settings, "customer_api_token") == "KAIROS_CUSTOMER_API_TOKEN"
    assert env_name(_Vault, "pin") == "VAULT_PIN"


def test_the_workers_garbage_collector_settings_apply_and_freeze_what_is_alive() -> None:
    import gc

    from app.garbage import NEVER, freeze_startup_objects, tune_for_batch, tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector(Settings().gc_threshold)
        young, older, oldest = gc.get_threshold()
        assert young == 5_000 and older == oldest == NEVER, "old generations only on a timer"
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0, "start-up objects are out of every collection"
        tune_for_batch()
        assert gc.get_threshold() == (50_000, 10, 10), "a backtest: rare young, older on count"
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_cycle_that_outlived_a_young_collection_is_freed_by_the_full_one() -> None:
    import asyncio
    import gc
    import weakref

    import faust

    from app.garbage import tune_garbage_collector
    from app.worker.faust_app import collect_old_garbage

    class Node:
        pass

    before = gc.get_threshold()
    try:
        tune_garbage_collector(700)
        node = Node()
        node.itself = node  # type: ignore[attr-defined]  # a reference cycle
        alive = weakref.ref(node)
        gc.collect(0)  # it survives a young collection: older now
        del node
        for _ in range(3):
            gc.collect(0)
        assert alive() is not None, "young collections leave older garbage alone"
        pauses: list[float] = []
        app = faust.App("gc-test", broker="memory://")
        asyncio.run(collect_old_garbage(app, 300.0, pauses.append)())
        assert alive() is None, "the timer's full collection freed it"
        assert len(pauses) == 1 and pauses[0] > 0, "and its pause is measured"
    finally:
        gc.set_threshold(*before)
