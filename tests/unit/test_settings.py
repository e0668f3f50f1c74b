from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_exactly_once_is_refused_on_the_embedded_broker() -> None:
    with pytest.raises(ValidationError, match="Tansu broker does not have"):
        Settings(broker_flavor="tansu", processing_guarantee="exactly_once")
    assert Settings(processing_guarantee="exactly_once").processing_guarantee == "exactly_once"


def test_settings_come_from_kairos_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIROS_TOPIC_PREFIX", "bank1")
    monkeypatch.setenv("KAIROS_PARTITIONS", "12")
    settings = Settings()
    assert (settings.topic_prefix, settings.partitions) == ("bank1", 12)
    monkeypatch.setenv("KAIROS_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()
