"""The latency bench's CPU shares, read from /proc, say who kept the machine busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.pipeline import _CpuClock, _machine_jiffies, _process_cpu_seconds

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux's /proc")


def test_a_busy_process_shows_its_cpu_and_a_missing_one_shows_none() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    clock = _CpuClock(os.getpid(), gone.pid)
    spent = time.process_time() + 0.05
    while time.process_time() < spent:
        pass  # burn CPU in this process
    use = clock.read()
    assert use.consumer is not None and use.consumer > 0, "this process's CPU was counted"
    assert use.broker is None, "a process that is gone has no share, not a zero"
    assert use.machine is not None and 0 < use.machine <= 1, "the machine's share of its cores"
    assert "n/a" in use.describe("the worker"), "an unknown share prints as such"


def test_the_readers_agree_with_the_kernel_totals() -> None:
    seconds = _process_cpu_seconds(os.getpid())
    assert seconds is not None and seconds <= time.process_time() + 0.05
    ticks = _machine_jiffies()
    assert ticks is not None and 0 < ticks[0] <= ticks[1]
    assert _process_cpu_seconds(None) is None
