"""A one-line progress bar on stderr, for commands that chew through large files.

A backtest of a month of traffic runs for a while; without a bar a user cannot tell a slow
run from a hung one. It redraws at most a few times a second (drawing is not free at
50,000 events/s) and stays silent when stderr is not a terminal, so CI logs and pipes get
only the final summary.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_REDRAW_S = 0.2


class ProgressBar:
    """``label [#####.....]  47%  1,234,567 events  52,301/s  ETA 12s``."""

    def __init__(
        self,
        label: str,
        unit: str = "events",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn_at = 0.0

    def update(self, fraction_done: float, count: int) -> None:
        """Redraw if it has been a moment (``fraction_done`` of the input, e.g. of its bytes)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at < _REDRAW_S:
            return
        self._drawn_at = now
        self._draw(min(max(fraction_done, 0.0), 1.0), count, now - self.started)

    def close(self, count: int) -> None:
        if self.enabled:
            self._draw(1.0, count, time.monotonic() - self.started)
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, fraction: float, count: int, elapsed: float) -> None:
        filled = int(fraction * _WIDTH)
        rate = count / elapsed if elapsed > 0 else 0.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%}  "
            f"{count:,} {self.unit}  {rate:,.0f}/s  ETA {eta:,.0f}s "
        )
        self.stream.flush()
