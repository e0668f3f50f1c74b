"""Fail safe on the real broker: no single input stops deciding, and health tells the truth.

Every input here once crashed a worker (and its restart, on the same message) while its
health checks kept answering 200. Now each is dead-lettered with its reason or, for a
rule that raises, recorded as a suppressed decision — and the next valid events are
decided, with ``/readyz`` never false meanwhile. A worker whose agent does die says so
at once and exits non-zero, so an orchestrator restarts it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from agents.health import EXIT_AGENT_FAILED
from app.kafka import WorkerProcess, free_port
from schemas.actions import Channel
from testkit.factories import click, drop_off, profile, transaction
from testkit.rulesets import IMMEDIATE_RULES
from tests.integration.agent_failure_worker import FATAL_KEY

pytestmark = pytest.mark.integration

DIVIDING_RULE = """
  - id: share-of-balance
    version: 1
    event: transaction
    when: [event.category == "transfer_out"]
    channels: [sms]
    template: share_of_balance
    params: {share: "{{ event.amount / event.balance_after }}"}
    priority: 95
"""

#: (what, topic attribute, key, value): each must be dead-lettered with this error type.
POISON: list[tuple[str, str, bytes | None, dict[str, Any]]] = [
    ("invalid_field", "app_click", b"C-P1", click("C-P1", occurred_at="9999-12-31T23:59:59+00:00")),
    ("invalid_field", "app_click", b"C-P2", click("C-P2", occurred_at="0001-01-01T00:00:00+00:00")),
    ("invalid_field", "transaction", b"C-P3", transaction("C-P3", balance_after="1e400")),
    ("invalid_field", "transaction", b"C-P4", transaction("C-P4", balance_after="9" * 400)),
    ("missing_key", "app_click", None, click("C-P5")),
    ("invalid_field", "profile", b"C-P6", profile("C-P6", consent={"sms": "yes"})),
    ("invalid_field", "profile", b"C-P7", profile("C-P7", marketing_opt_out="0")),
]


class ReadinessWatch:
    """Polls ``/readyz`` every 100 ms in the background and remembers every answer."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = self.worker.get_json("/readyz", timeout=2.0)
            except (OSError, ValueError):
                status = 0
            self.answers.append(status)
            self._stop.wait(0.1)

    def __enter__(self) -> ReadinessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _on(records: list[tuple[str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [value for name, value in records if name == topic]


def test_inputs_that_once_halted_a_worker_are_dead_lettered_and_deciding_goes_on(
    kairos: Any,
) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES + DIVIDING_RULE)
    worker = k.start_worker()
    t = k.topics
    k.send_profiles(profile("C-DIV", timezone="UTC"), profile("C-AFTER"))
    with ReadinessWatch(worker) as watch:
        for _, topic, key, value in POISON:
            if key is None:  # k.send would key it by its customer_id
                k.producer.send(getattr(t, topic), key=None, value=json.dumps(value).encode())
                k.producer.flush()
            else:
                k.send(getattr(t, topic), value, key=key)
        k.send(t.transaction, transaction("C-DIV", category="transfer_out", balance_after="0.00"))
        k.send(t.drop_off, drop_off("C-AFTER", step=3))
        records = k.collect(
            [t.dead_letter, t.decisions, t.actions(Channel.PUSH)],
            until=lambda r: (
                len(_on(r, t.dead_letter)) >= len(POISON)
                and len(_on(r, t.actions(Channel.PUSH))) >= 1
                and any(d["rule_id"] == "share-of-balance" for d in _on(r, t.decisions))
            ),
        )
    dead = _on(records, t.dead_letter)
    assert sorted(d["error_type"] for d in dead) == sorted(kind for kind, *_ in POISON)
    assert all(d["reason"] for d in dead)
    assert not any(d["error_type"] == "processing_failed" for d in dead)
    [broken] = [d for d in _on(records, t.decisions) if d["rule_id"] == "share-of-balance"]
    assert broken["outcome"] == "suppressed" and broken["reason_code"] == "rule_error"
    assert [a["customer_id"] for a in _on(records, t.actions(Channel.PUSH))] == ["C-AFTER"]
    assert worker.metric("kairos_rule_errors_total", rule_id="share-of-balance") == 1
    assert worker.is_running()
    assert watch.answers and set(watch.answers) == {200}, "/readyz was never false meanwhile"
    # Faust's own table page served this customer's whole state without a token.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{worker.base_url}/table/customer_state/C-AFTER/", timeout=2)
    assert refused.value.code == 404


def test_a_dead_agent_makes_the_worker_unready_and_exit_non_zero_within_seconds(
    kairos: Any,
) -> None:
    k = kairos(rules_yaml=IMMEDIATE_RULES)
    worker = WorkerProcess(
        k.env,
        free_port(),
        k.workdir / "failing-worker.log",
        module="tests.integration.agent_failure_worker",
        args=(),
    )
    k.workers.append(worker)  # stopped by the fixture whatever happens
    worker.start()
    worker.wait_ready()
    k.send(k.topics.app_click, click(FATAL_KEY.decode()), key=FATAL_KEY)
    sent = time.monotonic()
    unready_after = exited_after = None
    while time.monotonic() - sent < 60 and exited_after is None:
        if worker.exit_code is not None:
            exited_after = time.monotonic() - sent
            break
        try:
            status, _ = worker.get_json("/readyz", timeout=1.0)
        except (OSError, ValueError):
            status = 0  # the server is already gone
        if status != 200 and unready_after is None:
            unready_after = time.monotonic() - sent
        time.sleep(0.05)
    log = (k.workdir / "failing-worker.log").read_text(errors="replace")
    print(f"unready after {unready_after} s, exited after {exited_after} s")
    assert unready_after is not None, "/readyz stayed 200 after the agent died"
    assert exited_after is not None, f"the worker did not exit; log:\n{log[-3000:]}"
    # 1 when Faust's own crash path ends the process first, 70 when our deadline does
    assert worker.exit_code in (1, EXIT_AGENT_FAILED)
    assert "injected agent failure" in log, "the worker says why it stopped"
    assert FATAL_KEY.decode() not in log, "but never which customer it was deciding"
