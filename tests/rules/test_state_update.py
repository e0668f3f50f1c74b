"""The state record's pure updates: ``evolve`` must be indistinguishable from ``model_copy``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from rules.state_update import (
    apply_event,
    apply_profile,
    event_fingerprint,
    event_update,
    new_state,
)
from schemas.copying import evolve
from schemas.events import AppClick
from schemas.profile import CustomerProfile
from schemas.state import RECENT_EVENT_IDS, CustomerState, FeatureState

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _slots(model: BaseModel) -> tuple[Any, ...]:
    return (
        type(model),
        model.__dict__,
        model.__pydantic_fields_set__,
        model.__pydantic_extra__,
        getattr(model, "__pydantic_private__", None),
    )


def test_evolve_matches_model_copy_and_keeps_fields_set() -> None:
    state = CustomerState(customer_id="c1", event_counts={"app_click": 2})
    update = {"watermark": AT, "recent_event_ids": ["abc"]}

    copied = evolve(state, update)

    assert _slots(copied) == _slots(state.model_copy(update=update))
    assert copied.__pydantic_fields_set__ == {
        "customer_id",
        "event_counts",
        "watermark",
        "recent_event_ids",
    }
    assert state.watermark is None and state.__pydantic_fields_set__ == {
        "customer_id",
        "event_counts",
    }
    assert copied.__dict__ is not state.__dict__
    assert copied.__pydantic_fields_set__ is not state.__pydantic_fields_set__


def test_evolve_does_not_validate_like_model_copy() -> None:
    feature = FeatureState(sig="s")
    copied = evolve(feature, {"buckets": "not a dict"})
    assert copied.buckets == "not a dict"  # type: ignore[comparison-overlap]  # no validation
    assert _slots(copied) == _slots(feature.model_copy(update={"buckets": "not a dict"}))


def test_evolve_with_no_update_is_a_plain_copy() -> None:
    state = CustomerState(customer_id="c1")
    assert _slots(evolve(state, {})) == _slots(state.model_copy())


def test_evolve_keeps_extra_data_of_models_that_allow_it() -> None:
    click = AppClick.model_validate(
        {
            "event_id": "e1",
            "customer_id": "c1",
            "occurred_at": AT.isoformat(),
            "screen": "home",
            "platform": "ios",
            "campaign": "spring",
        }
    )
    update = {"screen": "cards", "new_extra": 1}
    copied = evolve(click, update)
    assert _slots(copied) == _slots(click.model_copy(update=update))
    assert copied.__pydantic_extra__ == {"campaign": "spring", "new_extra": 1}
    assert click.__pydantic_extra__ == {"campaign": "spring"}


class _WithPrivate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


def test_evolve_keeps_private_values() -> None:
    model = _WithPrivate(name="a")
    model._cache["x"] = 1
    copied = evolve(model, {"name": "b"})
    assert copied.name == "b" and copied._cache == {"x": 1}
    assert _slots(copied) == _slots(model.model_copy(update={"name": "b"}))


def _click(event_id: str, at: datetime, screen: str = "home") -> AppClick:
    return AppClick(
        event_id=event_id, customer_id="c1", occurred_at=at, screen=screen, platform="ios"
    )


def test_event_update_is_what_apply_event_applies() -> None:
    state = apply_event(CustomerState(customer_id="c1"), _click("e1", AT))
    later = _click("e2", AT.replace(hour=10), "cards")

    update = event_update(state, later, event_fingerprint(later))

    assert _slots(evolve(state, update)) == _slots(apply_event(state, later))
    assert update["last_screen"] == "cards"
    assert update["recent_event_ids"] == [
        event_fingerprint(_click("e1", AT)),
        event_fingerprint(later),
    ]
    assert state.event_counts == {"app_click": 1}  # the old state is untouched


def test_recent_event_ids_keep_the_newest_bounded_window() -> None:
    state = CustomerState(customer_id="c1")
    seen: list[str] = []
    for number in range(RECENT_EVENT_IDS + 8):
        click = _click(f"e{number}", AT + timedelta(minutes=number))
        seen.append(event_fingerprint(click))
        state = apply_event(state, click)
        assert state.recent_event_ids == seen[-RECENT_EVENT_IDS:]


def test_a_profile_replaces_the_stored_one_only_if_newer() -> None:
    """The ordering rule the README's profile contract states, by ``updated_at``."""

    def stored(at: datetime, tier: str) -> CustomerProfile:
        return CustomerProfile(customer_id="C1", updated_at=at, tier=tier)

    state = apply_profile(new_state("C1"), stored(AT, "mass"))
    assert apply_profile(state, stored(AT - timedelta(days=1), "older")).profile == state.profile
    assert apply_profile(state, stored(AT, "same instant")).profile == state.profile
    newer = apply_profile(state, stored(AT + timedelta(seconds=1), "private")).profile
    assert newer is not None and newer.tier == "private"
