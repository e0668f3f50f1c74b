"""Fails when a faust-streaming upgrade changes the code app/worker/faust_fixes.py replaces."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

from app.worker import faust_fixes

#: sha256 of faust-streaming 0.15.3's sources of the methods replaced, as reviewed.
REVIEWED_ON_RECOVERY_COMPLETED = "6ef567acf072e46da3fccbccc6d662371f634f622c3d510972d5df81f70ae3ac"
REVIEWED_WAIT_NEXT_RECORDS = "6218e1969a636b3ff504ad1b8e7ad58a113572e43d746cc96d684ed5153032c6"
REVIEWED_DRAIN_MESSAGES = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
REVIEWED_SLURP_CHANGELOGS = "7825c7e50f766d5ab0fd246b63420ea0dfcd732d005f1057cc9da656ff5d3967"


def test_the_replaced_faust_method_is_the_one_we_reviewed() -> None:
    source = inspect.getsource(faust_fixes.ORIGINAL_ON_RECOVERY_COMPLETED)
    assert hashlib.sha256(source.encode()).hexdigest() == REVIEWED_ON_RECOVERY_COMPLETED, (
        "faust-streaming changed Recovery.on_recovery_completed: check whether it still "
        "resumes stream partitions before the seek and clears queues after it, then update "
        "or drop app/worker/faust_fixes.py"
    )
    resume = source.index("consumer.resume_partitions(")
    seek = source.index("consumer.perform_seek()")
    clear = source.index("self.app.flow_control.resume()")
    assert resume < seek < clear, "the racy order the fix exists for"


def test_the_replaced_fetch_wait_is_the_one_we_reviewed() -> None:
    source = inspect.getsource(faust_fixes.ORIGINAL_WAIT_NEXT_RECORDS)
    assert hashlib.sha256(source.encode()).hexdigest() == REVIEWED_WAIT_NEXT_RECORDS, (
        "faust-streaming changed Consumer._wait_next_records: check whether it still hands "
        "the live set of active partitions to the fetch, then update or drop the fix"
    )
    assert "active_partitions = self._get_active_partitions()" in source


async def _records_drained_with(active: set[str]) -> tuple[set[str], object]:
    """What the fix passes to the fetch, and returns, while the live set changes under it."""
    seen: dict[str, object] = {}

    class FakeConsumer:
        flow_active = True
        app = type("App", (), {"client_only": False})()
        not_waiting_next_records = type("Ev", (), {"set": lambda self: None})()

        def _get_active_partitions(self) -> set[str]:
            return active

        async def _getmany(self, active_partitions: set[str], timeout: float) -> dict[str, int]:
            seen["passed"] = active_partitions
            active.clear()  # recovery pauses everything while the fetch waits
            return {"tp": 1}

        async def sleep(self, seconds: float) -> None:
            seen["slept"] = seconds

    _, returned = await faust_fixes._wait_next_records(FakeConsumer(), 1.0)  # type: ignore[arg-type]
    return set(seen.get("passed") or ()), returned


def test_a_fetch_keeps_the_partitions_it_was_asked_for() -> None:
    import asyncio

    passed, returned = asyncio.run(_records_drained_with({"clicks-0", "clicks-1"}))
    assert passed == {"clicks-0", "clicks-1"}, "the thread drains what was active at the call"
    assert returned == {"clicks-0", "clicks-1"}, "and Faust keeps what was drained"


def test_the_fix_clears_and_seeks_before_resuming_the_stream() -> None:
    source = inspect.getsource(faust_fixes._on_recovery_completed)
    clear = source.index("self.app.flow_control.resume()")
    seek = source.index("consumer.perform_seek()")
    resume = source.index("consumer.resume_partitions(")
    assert clear < seek < resume


def test_the_replaced_message_delivery_is_the_one_we_reviewed() -> None:
    source = inspect.getsource(faust_fixes.ORIGINAL_DRAIN_MESSAGES)
    assert hashlib.sha256(source.encode()).hexdigest() == REVIEWED_DRAIN_MESSAGES, (
        "faust-streaming changed Consumer._drain_messages: check whether it still races each "
        "callback with suspend_flow through wait_first, then update or drop fix 3 (copy the "
        "new method, keep the one changed line)"
    )
    assert "await self.wait_first(\n" in source and "callback(message)" in source
    ours = inspect.getsource(faust_fixes._drain_messages)
    assert "await _deliver(self, callback(message))" in ours and "wait_first" not in ours


def test_the_replaced_restore_loop_is_the_one_we_reviewed() -> None:
    source = inspect.getsource(faust_fixes.ORIGINAL_SLURP_CHANGELOGS)
    assert hashlib.sha256(source.encode()).hexdigest() == REVIEWED_SLURP_CHANGELOGS, (
        "faust-streaming changed Recovery._slurp_changelogs: check whether it still waits for "
        "each record with asyncio.wait_for and checks for the end after each, then update or "
        "drop fix 4 (copy the new method, keep the marked changes)"
    )
    assert "asyncio.wait_for(\n                        changelog_queue.get()" in source


class _Flag:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


class _Consumer:
    """What ``_deliver`` uses of Faust's consumer: ``wait_first`` and ``suspend_flow``."""

    def __init__(self) -> None:
        self.suspend_flow = _Flag()
        self.raced = 0

    async def wait_first(self, *coros: Any) -> None:
        self.raced += 1
        tasks = [asyncio.ensure_future(c) for c in coros]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()


async def _delivered(callback: Any) -> tuple[_Consumer, list[str]]:
    consumer = _Consumer()
    seen: list[str] = []
    await faust_fixes._deliver(consumer, callback(seen))  # type: ignore[arg-type]
    return consumer, seen


def test_a_callback_that_need_not_wait_runs_at_once_without_tasks() -> None:
    async def put(seen: list[str]) -> None:
        seen.append("put")

    consumer, seen = asyncio.run(_delivered(put))
    assert seen == ["put"] and consumer.raced == 0


def test_a_callback_that_waits_is_finished_in_the_race_with_a_rebalance() -> None:
    async def scenario() -> tuple[_Consumer, list[str]]:
        loop = asyncio.get_running_loop()
        room = loop.create_future()
        loop.call_later(0.01, room.set_result, "room")

        async def put(seen: list[str]) -> None:
            seen.append("waiting")
            seen.append(await room)  # a full queue
            await asyncio.sleep(0)
            seen.append("put")

        return await _delivered(put)

    consumer, seen = asyncio.run(scenario())
    assert seen == ["waiting", "room", "put"] and consumer.raced == 1


def test_a_rebalance_cancels_a_callback_that_waits() -> None:
    async def scenario() -> list[str]:
        consumer = _Consumer()
        seen: list[str] = []

        async def put() -> None:
            try:
                await asyncio.Event().wait()  # a queue that never empties
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        delivery = asyncio.ensure_future(faust_fixes._deliver(consumer, put()))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        consumer.suspend_flow.event.set()
        await delivery
        return seen

    assert asyncio.run(scenario()) == ["cancelled"]


def test_a_callback_error_reaches_the_fetcher_as_before() -> None:
    async def broken(seen: list[str]) -> None:
        raise ValueError("decode")

    with pytest.raises(ValueError, match="decode"):
        asyncio.run(_delivered(broken))


def test_apply_installs_the_fix_once() -> None:
    faust_fixes.apply()
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed
    assert Consumer._wait_next_records is faust_fixes._wait_next_records
    assert Consumer._drain_messages is faust_fixes._drain_messages
    restore_loop = vars(Recovery)["_slurp_changelogs"]
    assert restore_loop.fun is faust_fixes._slurp_changelogs, "still a Service task"
    faust_fixes.apply()
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed
    assert Consumer._wait_next_records is faust_fixes._wait_next_records
