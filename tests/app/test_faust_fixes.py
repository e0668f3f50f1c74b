"""Fails when a faust-streaming upgrade changes the code app/worker/faust_fixes.py replaces."""

from __future__ import annotations

import hashlib
import inspect

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

from app.worker import faust_fixes

#: sha256 of faust-streaming 0.15.3's sources of the methods replaced, as reviewed.
REVIEWED_ON_RECOVERY_COMPLETED = "6ef567acf072e46da3fccbccc6d662371f634f622c3d510972d5df81f70ae3ac"
REVIEWED_WAIT_NEXT_RECORDS = "6218e1969a636b3ff504ad1b8e7ad58a113572e43d746cc96d684ed5153032c6"


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


def test_apply_installs_the_fix_once() -> None:
    faust_fixes.apply()
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed
    assert Consumer._wait_next_records is faust_fixes._wait_next_records
    faust_fixes.apply()
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed
    assert Consumer._wait_next_records is faust_fixes._wait_next_records
