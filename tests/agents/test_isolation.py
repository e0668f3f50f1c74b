"""One input, one rule or one feature that cannot be decided never stops the others.

Each case here was seen to crash a worker (and its restart, on the same message) before
the processor isolated it: it must now be dead-lettered with its reason, or — a rule or a
feature that raises — counted and recorded while the rest of the moment is decided.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import agents.processor as processor_module
from agents.checkpoint import CUSTOMER_STATES, TableState
from agents.metrics import Metrics
from agents.processor import EventProcessor, InputMessage, Processed
from app.settings import EXAMPLE_RULES
from rules.language.loader import load_ruleset
from rules.ruleset import Ruleset
from schemas.dead_letter import DeadLetter
from schemas.decisions import Decision
from schemas.state import CustomerState
from schemas.topics import TopicNames
from testkit.factories import click, profile, transaction
from testkit.rulesets import DIVIDING_RULES, ruleset_from
from testkit.stores import MemoryStore

TOPICS = TopicNames("kairos")


class Worker:
    """The processor over an in-memory store, as the agent drives it (state stored after)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.metrics = Metrics()
        self.processor = EventProcessor(TOPICS, ruleset, self.metrics)
        self.store: dict[bytes, CustomerState] = {}
        self.offset = 0

    def send(
        self, topic: str, value: dict[str, Any] | bytes, key: bytes | None = b"C1"
    ) -> Processed:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.offset += 1
        processed = self.processor.process(
            InputMessage(topic, 0, self.offset, key, raw), self.store
        )
        if processed.state is not None:
            self.store[processed.state[0]] = processed.state[1]
        return processed

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def _dead_letter(processed: Processed) -> DeadLetter:
    [output] = processed.outputs
    assert output.topic == TOPICS.dead_letter
    assert processed.state is None, "a dead-lettered message changes no state"
    return DeadLetter.model_validate_json(output.value)


def _decisions(processed: Processed) -> dict[str, Decision]:
    return {
        d.rule_id: d
        for d in (
            Decision.model_validate_json(o.value)
            for o in processed.outputs
            if o.topic == TOPICS.decisions
        )
    }


def _consenting(worker: Worker, customer: str = "C1") -> None:
    worker.send(TOPICS.profile, profile(customer, timezone="UTC"), key=customer.encode())


def test_a_rule_whose_params_divide_by_zero_is_suppressed_and_the_next_rule_sends() -> None:
    worker = Worker(ruleset_from(DIVIDING_RULES))
    _consenting(worker)
    processed = worker.send(TOPICS.transaction, transaction("C1", balance_after="0.00"))
    decisions = _decisions(processed)
    assert decisions["share-of-balance"].reason_code == "rule_error"
    assert "division by zero" in decisions["share-of-balance"].reason
    assert decisions["condition-divides"].reason_code == "rule_error"
    assert decisions["salary-hello"].outcome == "sent"
    actions = [o for o in processed.outputs if o.topic.startswith("kairos.actions.")]
    assert [json.loads(a.value)["rule_id"] for a in actions] == ["salary-hello"]
    assert json.loads(actions[0].value)["params"] == {"text": "mass / salary"}
    assert worker.count("kairos_rule_errors_total", rule_id="share-of-balance") == 1
    assert worker.count("kairos_rule_errors_total", rule_id="condition-divides") == 1
    assert worker.count("kairos_rule_fires_total", rule_id="share-of-balance") == 0
    assert (
        worker.count("kairos_suppressions_total", reason="rule_error", rule_id="share-of-balance")
        == 1
    )
    assert worker.count("kairos_feature_errors_total", feature="share_30d") == 1
    state = worker.store[b"C1"]
    assert "share_30d" not in state.features, "the feature kept its (empty) previous value"


def test_the_next_event_of_the_same_customer_is_decided_after_a_rule_error() -> None:
    worker = Worker(ruleset_from(DIVIDING_RULES))
    _consenting(worker)
    worker.send(TOPICS.transaction, transaction("C1", balance_after="0.00"))
    processed = worker.send(TOPICS.transaction, transaction("C1", balance_after="100.00"))
    decisions = _decisions(processed)
    assert decisions["share-of-balance"].outcome == "sent"
    assert worker.store[b"C1"].features["share_30d"].buckets


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"occurred_at": "9999-12-31T23:59:59+00:00"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+00:00"}, "occurred_at"),
        ({"balance_after": "1e400"}, "balance_after"),
        ({"balance_after": "9" * 400}, "balance_after"),
        ({"balance_after": "NaN"}, "balance_after"),
        ({"amount": "Infinity"}, "amount"),
        ({"schema_version": 10**30}, "schema_version"),
    ],
)
def test_values_no_bank_event_carries_are_refused_at_validation(
    overrides: dict[str, Any], field: str
) -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    _consenting(worker)
    letter = _dead_letter(worker.send(TOPICS.transaction, transaction("C1", **overrides)))
    assert letter.error_type == "invalid_field"
    assert field in letter.reason
    # and the worker goes on: the customer's next event is decided on a readable state
    assert worker.send(TOPICS.transaction, transaction("C1", balance_after="10.00")).state


def test_an_infinite_number_in_an_extra_field_is_refused() -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    raw = json.dumps(click("C1"))[:-1] + ', "score": 1e400}'
    letter = _dead_letter(worker.send(TOPICS.app_click, raw.encode()))
    assert "non-finite" in letter.reason


@pytest.mark.parametrize(
    "consent",
    [
        {"consent": {"sms": "yes", "push": True, "rm": False}},
        {"consent": {"sms": "Y", "push": True, "rm": False}},
        {"consent": {"sms": 1, "push": True, "rm": False}},
        {"marketing_opt_out": "0"},
        {"push_enabled": "true"},
    ],
)
def test_consent_must_be_an_explicit_boolean(consent: dict[str, Any]) -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    letter = _dead_letter(worker.send(TOPICS.profile, profile("C1", **consent)))
    assert letter.error_type == "invalid_field"
    assert "valid boolean" in letter.reason
    assert b"C1" not in worker.store


def test_a_message_without_a_key_is_dead_lettered_before_it_touches_any_state() -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    for topic, value in [(TOPICS.profile, profile("C1")), (TOPICS.app_click, click("C1"))]:
        letter = _dead_letter(worker.send(topic, value, key=None))
        assert letter.error_type == "missing_key"
    assert worker.store == {}


def test_an_engine_that_raises_dead_letters_the_input_and_the_next_customer_is_decided(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_dispatch = processor_module.dispatch

    def dispatch(item: Any, *args: Any, **kwargs: Any) -> Any:
        if item.customer_id == "C-POISON":
            raise KeyError(b"C-POISON")  # an exception whose text holds the customer id
        return real_dispatch(item, *args, **kwargs)

    monkeypatch.setattr(processor_module, "dispatch", dispatch)
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    caplog.set_level(logging.DEBUG)
    letter = _dead_letter(worker.send(TOPICS.app_click, click("C-POISON"), key=b"C-POISON"))
    assert letter.error_type == "processing_failed"
    assert letter.reason.startswith("deciding it raised KeyError")
    assert "C-POISON" not in letter.reason
    assert worker.count("kairos_events_invalid_total", reason="processing_failed") == 1
    assert worker.send(TOPICS.app_click, click("C2"), key=b"C2").state is not None
    assert "C-POISON" not in caplog.text


def test_a_state_that_cannot_be_read_dead_letters_the_event_not_the_worker() -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    stored = MemoryStore()
    stored.partitions[0] = {b"C1": b"\x02not zstandard"}
    states = TableState(stored, CUSTOMER_STATES, capacity=10)
    message = InputMessage(TOPICS.app_click, 0, 1, b"C1", json.dumps(click("C1")).encode())
    letter = _dead_letter(worker.processor.process(message, states.at(0)))
    assert letter.error_type == "state_unreadable"
    message = InputMessage(TOPICS.app_click, 0, 2, b"C2", json.dumps(click("C2")).encode())
    assert worker.processor.process(message, states.at(0)).state is not None


def test_an_output_over_the_brokers_limit_dead_letters_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor_module, "MAX_OUTPUT_BYTES", 200)
    worker = Worker(ruleset_from(DIVIDING_RULES))
    _consenting(worker)
    letter = _dead_letter(worker.send(TOPICS.transaction, transaction("C1")))
    assert letter.error_type == "output_too_large"


def test_no_customer_id_reaches_the_logs_at_any_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    worker = Worker(ruleset_from(DIVIDING_RULES))
    secret_id = "C-SECRET-4711"
    key = secret_id.encode()
    worker.send(TOPICS.profile, profile(secret_id, timezone="UTC"), key=key)
    worker.send(TOPICS.transaction, transaction(secret_id, balance_after="0.00"), key=key)
    worker.send(TOPICS.transaction, transaction(secret_id), key=b"someone-else")
    worker.send(
        TOPICS.transaction, transaction(secret_id, occurred_at="9999-01-01T00:00:00Z"), key=key
    )
    assert worker.count("kairos_rule_errors_total", rule_id="share-of-balance") == 1
    assert caplog.records, "the failures above are logged"
    assert secret_id not in caplog.text


def test_an_rm_request_that_cannot_be_read_is_dead_lettered() -> None:
    worker = Worker(load_ruleset(EXAMPLE_RULES))
    processed = worker.processor.process_rm_request(
        InputMessage(TOPICS.rm_requests, 0, 1, b"rm:RM-1", b"{not json"), {}
    )
    assert _dead_letter(processed).error_type == "processing_failed"


def test_the_backtest_counts_what_the_engine_cannot_decide_as_the_worker_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rules.offline.replay as replay_module
    from rules.offline.backtest import Backtest
    from schemas.codec import decode_event

    real_dispatch = replay_module.dispatch

    def dispatch(item: Any, *args: Any, **kwargs: Any) -> Any:
        if item.customer_id == "C-POISON":
            raise RuntimeError("engine bug")
        return real_dispatch(item, *args, **kwargs)

    monkeypatch.setattr(replay_module, "dispatch", dispatch)
    backtest = Backtest(load_ruleset(EXAMPLE_RULES))
    backtest.event(decode_event(json.dumps(click("C-POISON")).encode()))
    backtest.event(decode_event(json.dumps(click("C2")).encode()))
    report = backtest.report()
    assert report.inputs.rejected == {"processing_failed": 1}
