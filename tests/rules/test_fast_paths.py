"""The engine's shortcuts must give exactly what the plain forms they replace give.

Each shortcut (bench/replay_speed.py measures them) keeps a slower, obvious form next to it
in spirit: a shared tzinfo for parsed times, the feature feeds' index, a verdict built
without its ``__init__``, a blank feature record copied rather than validated, the ids of
the candidate rules computed once, timer ticks that find nothing due left out, and
``days_since(x) >= N`` compared as a time span.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic_core import TzInfo

import schemas.events as events_module
from rules.engine.verdict import EvaluationContext, Verdict, new_verdict
from rules.engine.windows import _FeedContext
from rules.features import blank_state
from rules.language.expression_types import ANY, DATETIME, FieldType
from rules.language.expressions import compile_expression, leading_index_hint
from rules.offline.replay import Replay
from schemas.codec import decode_event, encode
from schemas.events import AppClick, Transaction
from schemas.state import CustomerState, FeatureState
from testkit.rulesets import ruleset_from

AT = datetime(2026, 3, 2, 9, 30, 15, 123_456, tzinfo=UTC)


def _click(customer: str, at: str, screen: str, event_id: str = "e1", **extra: Any) -> bytes:
    body = {
        "event_type": "app_click",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at,
        "screen": screen,
        "platform": "ios",
        **extra,
    }
    return json.dumps(body).encode()


# -- parsed times share their tzinfo ----------------------------------------------------


def test_parsed_utc_times_use_the_shared_utc_zone_and_serialise_the_same() -> None:
    first = decode_event(_click("c1", "2026-03-02T09:30:15.123456Z", "home"))
    second = decode_event(_click("c1", "2026-03-02T10:00:00+00:00", "home", "e2"))

    assert first.occurred_at.tzinfo is UTC and second.occurred_at.tzinfo is UTC
    assert first.occurred_at == AT
    assert json.loads(encode(first))["occurred_at"] == "2026-03-02T09:30:15.123456Z"
    assert first.occurred_at.isoformat() == "2026-03-02T09:30:15.123456+00:00"
    assert first.occurred_at.tzname() == "UTC"


def test_other_offsets_keep_their_offset_and_share_one_tzinfo_per_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The shared zones are bounded and process-wide: earlier tests (Hypothesis draws many
    # offsets) may have filled them, after which a new offset is kept unshared, by design.
    monkeypatch.setattr(events_module, "_SHARED_ZONES", {})
    first = decode_event(_click("c1", "2026-03-02T11:30:15+02:00", "home"))
    second = decode_event(_click("c1", "2026-03-02T12:00:00+02:00", "home", "e2"))
    other = decode_event(_click("c1", "2026-03-02T12:00:00-03:30", "home", "e3"))

    assert first.occurred_at.tzinfo is second.occurred_at.tzinfo
    assert isinstance(first.occurred_at.tzinfo, TzInfo)
    assert first.occurred_at.utcoffset() == timedelta(hours=2)
    assert other.occurred_at.utcoffset() == -timedelta(hours=3, minutes=30)
    assert json.loads(encode(first))["occurred_at"] == "2026-03-02T11:30:15+02:00"
    assert first.occurred_at == datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)


def test_a_callers_own_zone_is_kept_as_given() -> None:
    madrid = datetime(2026, 3, 2, 10, 30, tzinfo=ZoneInfo("Europe/Madrid"))
    click = AppClick(
        event_id="e1", customer_id="c1", occurred_at=madrid, screen="x", platform="ios"
    )
    assert click.occurred_at is madrid


def test_times_outside_bank_time_are_still_refused_whatever_their_offset() -> None:
    from schemas.errors import InvalidEventError

    for stamp in ("2200-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00"):
        with pytest.raises(InvalidEventError, match="must lie between"):
            decode_event(_click("c1", stamp, "home"))


def test_non_finite_extra_fields_are_still_refused() -> None:
    from schemas.errors import InvalidEventError

    raw = _click("c1", "2026-03-02T09:30:00Z", "home").replace(b"}", b', "x": 1e400}')
    with pytest.raises(InvalidEventError, match="non-finite"):
        decode_event(raw)


# -- the feature feeds' index -------------------------------------------------------------

FEEDS = ruleset_from(
    """
features:
  - {name: home_views, aggregate: count, event: app_click, when: event.screen == "home"}
  - name: wealth_views
    aggregate: count
    event: app_click
    when: event.screen in ["wealth", "funds"] and event.platform == "ios"
  - {name: any_click, aggregate: count, event: app_click}
  - name: late_hint
    aggregate: count
    event: app_click
    when: [event.platform == "web", event.screen == "home"]
  - {name: salaries, aggregate: count, event: transaction, when: event.category == "salary"}
"""
)


def _feed_names(record: Any) -> list[str]:
    return [f.name for f in FEEDS.feeds[record.event_type].for_record(record)]


def test_feeds_are_indexed_on_the_leading_equality_in_declaration_order() -> None:
    feeds = FEEDS.feeds["app_click"]
    assert feeds.key == "screen"
    home = AppClick(event_id="e", customer_id="c", occurred_at=AT, screen="home", platform="ios")
    funds = home.model_copy(update={"screen": "funds"})
    other = home.model_copy(update={"screen": "cards"})
    assert _feed_names(home) == ["home_views", "any_click", "late_hint"]
    assert _feed_names(funds) == ["wealth_views", "any_click", "late_hint"]
    assert _feed_names(other) == ["any_click", "late_hint"]


def test_records_whose_key_is_not_plain_text_meet_every_feature() -> None:
    feeds = FEEDS.feeds["app_click"]

    class Odd:
        event_type = "app_click"
        screen = 3

    assert feeds.for_record(Odd()) == feeds.every
    assert feeds.for_record(object()) == feeds.every


def test_every_skipped_feature_would_have_returned_none() -> None:
    """The index against the plain loop, over every screen value the index knows and more."""
    for screen in ("home", "wealth", "funds", "cards", "Home"):
        for platform in ("ios", "web"):
            click = AppClick(
                event_id="e", customer_id="c", occurred_at=AT, screen=screen, platform=platform
            )
            context = _FeedContext({"event": click, "profile": None, "state": None}, AT)
            taken = FEEDS.feeds["app_click"].for_record(click)
            for feature in FEEDS.features_by_event["app_click"]:
                if feature not in taken:
                    assert feature.update(None, context, AT) is None, (feature.name, screen)


def test_only_the_first_part_of_the_first_condition_gives_a_hint() -> None:
    assert leading_index_hint('event.screen == "a"') == ("screen", frozenset({"a"}))
    assert leading_index_hint('event.screen in ["a", "b"] and x > 1') == (
        "screen",
        frozenset({"a", "b"}),
    )
    assert leading_index_hint('x > 1 and event.screen == "a"') is None
    assert leading_index_hint('event.screen == "a" or x') is None
    assert leading_index_hint("event.screen ==") is None


def test_a_source_without_hints_meets_every_feature() -> None:
    ruleset = ruleset_from(
        """
features:
  - {name: clicks, aggregate: count, event: app_click}
"""
    )
    feeds = ruleset.feeds["app_click"]
    assert feeds.key is None
    click = AppClick(event_id="e", customer_id="c", occurred_at=AT, screen="x", platform="ios")
    assert feeds.for_record(click) == feeds.every


# -- verdicts, contexts, blank feature records, rule ids ----------------------------------


def test_new_verdict_equals_the_dataclass_built_by_its_init() -> None:
    state = CustomerState(customer_id="c1")
    values: dict[str, Any] = {
        "state": state,
        "decisions": [],
        "actions": [],
        "evaluated": ("r1",),
        "duplicate": False,
        "late": True,
        "failures": [],
        "timers": [],
        "conversions": [],
        "rm_requests": [],
        "feedback": None,
        "feedback_after_s": None,
        "wake_up_at": AT,
        "timings": {},
    }
    assert list(values) == [f.name for f in fields(Verdict)]  # every field, in order
    built = Verdict(**values)
    fast = new_verdict(dict(values))
    assert fast == built and vars(fast) == vars(built)
    assert list(vars(fast)) == list(vars(built))
    with pytest.raises(AttributeError):
        fast.late = False  # type: ignore[misc]  # still frozen


def test_the_engines_verdicts_carry_every_field() -> None:
    ruleset = ruleset_from(
        """
rules:
  - {id: r1, version: 1, event: app_click, when: event.screen == "x", channels: [push], template: t}
"""
    )
    replay = Replay(ruleset)
    click = AppClick(event_id="e", customer_id="c", occurred_at=AT, screen="x", platform="ios")
    (verdict,) = replay.event(click)
    assert list(vars(verdict)) == [f.name for f in fields(Verdict)]
    assert verdict.evaluated == ("r1",)


def test_evaluation_context_gets_a_memo_of_its_own() -> None:
    first, second = EvaluationContext({}, AT), EvaluationContext({}, AT)
    assert first.memo == {} and first.memo is not second.memo


def test_blank_feature_state_is_the_validated_record() -> None:
    fast, built = blank_state("abcd"), FeatureState(sig="abcd")
    assert fast == built
    assert list(vars(fast)) == list(vars(built))
    assert fast.__pydantic_fields_set__ == built.__pydantic_fields_set__ == {"sig"}
    assert fast.__pydantic_extra__ is built.__pydantic_extra__
    assert fast.__pydantic_private__ == built.__pydantic_private__
    assert fast.buckets is not blank_state("abcd").buckets  # containers are never shared


def test_rule_ids_of_held_and_assembled_candidates() -> None:
    ruleset = ruleset_from(
        """
rules:
  - {id: a, version: 1, event: app_click, when: event.screen == "x", channels: [push], template: t}
  - {id: b, version: 1, event: app_click, channels: [push], template: t}
  - id: c
    version: 1
    event: app_click
    when: event.screen in ["x", "y"]
    channels: [push]
    template: t
"""
    )
    for screen, expected in (("x", ("a", "b", "c")), ("y", ("b", "c")), ("z", ("b",))):
        click = AppClick(
            event_id="e", customer_id="c", occurred_at=AT, screen=screen, platform="ios"
        )
        candidates = ruleset.for_event(click)
        assert ruleset.rule_ids(candidates) == tuple(r.id for r in candidates) == expected
    assert ruleset.rule_ids(()) == ()
    # a tuple equal to a held one but not that object: computed, not looked up by address
    assert ruleset.rule_ids(tuple(ruleset.rules[1:2])) == ("b",)


# -- timer ticks that find nothing due ----------------------------------------------------


def test_replay_fires_absence_waits_once_though_every_event_requeues_a_wake_up() -> None:
    ruleset = ruleset_from(
        """
rules:
  - id: wait
    version: 1
    event: app_click
    when: event.screen == "start"
    unless: {within: 30m, events: [{event: app_click, when: event.screen == "done"}]}
    channels: [push]
    template: t
"""
    )
    replay = Replay(ruleset)
    start = AppClick(event_id="e0", customer_id="c", occurred_at=AT, screen="start", platform="ios")
    replay.event(start)
    fired = []
    for minute in range(1, 40):
        click = start.model_copy(
            update={
                "event_id": f"e{minute}",
                "screen": "home",
                "occurred_at": AT + timedelta(minutes=minute),
            }
        )
        fired += [v for v in replay.event(click) if v.timers]
    assert [(t.rule_id, t.change) for v in fired for t in v.timers] == [("wait", "fired")]
    assert [d.rule_id for v in fired for d in v.decisions] == ["wait"]  # no profile: suppressed
    assert not replay.states["c"].timers


def test_a_transaction_meets_its_feeds_through_the_index() -> None:
    salary = Transaction(
        event_id="e",
        customer_id="c",
        occurred_at=AT,
        amount=100,
        currency="EUR",
        direction="credit",
        category="salary",
    )
    assert _feed_names(salary) == ["salaries"]
    assert _feed_names(salary.model_copy(update={"category": "other"})) == []


# -- days_since / hours_since compared with a whole number ---------------------------------


class _Context:
    def __init__(self, then: datetime | None, now: datetime) -> None:
        self.roots = {"t": then, "x": then}
        self.now = now


def _reference(function: str, then: datetime | None, now: datetime, op: str, n: int) -> bool:
    """The general form: the Decimal the function returns, compared as the language does."""
    if then is None:
        return False
    unit = Decimal(86400) if function == "days_since" else Decimal(3600)
    value = Decimal((now - then).total_seconds()) / unit
    return bool({">=": value >= n, ">": value > n, "<=": value <= n, "<": value < n}[op])


@pytest.mark.parametrize("function", ["days_since", "hours_since"])
@pytest.mark.parametrize("op", [">=", ">", "<=", "<"])
def test_since_compared_with_a_whole_number_decides_as_the_decimal_does(
    function: str, op: str
) -> None:
    rng = random.Random(f"{function}{op}")
    scope = {"t": FieldType(DATETIME)}
    unit = 86400 if function == "days_since" else 3600
    for n in (0, 1, 3, 60, 365, 9999, 10_000, -1, -60):
        compiled = compile_expression(f"{function}(t) {op} {n}", scope)
        general = compile_expression(f"{function}(t) + 0 {op} {n}", scope)  # not specialised
        # a negative number is an expression (-1), not a literal: it keeps the general form
        assert ("_compare_since" in compiled.evaluate.__qualname__) is (n >= 0)
        assert "_compare_since" not in general.evaluate.__qualname__
        for _ in range(300):
            offset_us = rng.choice(
                [0, 1, -1, 2, -2, 999_999, -999_999, rng.randrange(-(10**9), 10**9)]
            )
            span = timedelta(seconds=n * unit, microseconds=offset_us)
            then = AT - span
            expected = _reference(function, then, AT, op, n)
            assert compiled.evaluate(_Context(then, AT)) is expected, (n, offset_us)
            assert general.evaluate(_Context(then, AT)) == expected
        assert compiled.evaluate(_Context(None, AT)) is False


def test_since_keeps_the_general_form_where_it_is_not_proven() -> None:
    scope = {"t": FieldType(DATETIME)}
    for text in ("days_since(t) >= 10001", "days_since(t) >= 1.5", "days_since(t) == 3"):
        compiled = compile_expression(text, scope)
        assert compiled.evaluate(_Context(AT - timedelta(days=1), AT)) is False
    with pytest.raises(TypeError):  # not a datetime: the same error from the same subtraction
        compile_expression("days_since(x) >= 1", {"x": FieldType(ANY)}).evaluate(
            _Context("yesterday", AT)  # type: ignore[arg-type]  # a wrong type on purpose
        )
