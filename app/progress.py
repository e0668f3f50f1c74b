"""One progress line on stderr for the commands that take a while: backtest, report.

A backtest of a month of traffic, or ``kairos report`` reading the decision topics, runs for
minutes; without a progress line a user cannot tell a slow run from a hung one. Drawn by
tqdm, which redraws a few times a second at most and fits the line to the terminal's width
as it is now (a resized window included): a line wider than the terminal would wrap, and
every redraw would then leave a line behind. It is silent when stderr is not a terminal,
so CI logs and pipes get only the command's summary.

Two kinds of input, one mechanism: an input whose size is known up front (files: the
fraction of their bytes read) shows a percentage, a bar and the time left; one that is
not (topics read to their end) shows the count and the rate.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

#: Fraction known: ``backtest  47%|█████▏     | 1.23M events [00:23<00:26, 52.3k events/s]``.
_SIZED = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}{unit} [{elapsed}<{remaining}, {rate_fmt}]"
#: Count only: ``report 12.3k records [00:02, 5.61k records/s]``.
_COUNTED = "{desc} {n_fmt}{unit} [{elapsed}, {rate_fmt}]"


class Progress:
    """A progress line for ``count`` items read, and the ``fraction`` of the input if known.

    ``enabled``: ``None`` draws only when ``stream`` (stderr by default) is a terminal;
    ``redraw_s``: the least time between two redraws (drawing is not free at 50,000
    events/s).
    """

    def __init__(
        self,
        label: str,
        unit: str = "events",
        *,
        sized: bool = False,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        redraw_s: float = 0.2,
    ) -> None:
        stream = stream if stream is not None else sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.sized = sized
        self._bar = _FittedBar(
            desc=label,
            unit=f" {unit}",
            unit_scale=True,
            bar_format=_SIZED if sized else _COUNTED,
            file=stream,
            disable=not self.enabled,
            dynamic_ncols=True,
            mininterval=redraw_s,
            leave=True,
        )

    def update(self, count: int, fraction: float | None = None) -> None:
        """``count`` items so far; for a sized input, ``fraction`` of it read (e.g. its bytes).

        The bar's total is the count the fraction predicts, so the rate and the time left
        are in items, while the percentage follows the input actually read.
        """
        if not self.enabled:
            return
        if self.sized and fraction is not None and fraction > 0:
            self._bar.total = max(count, round(count / min(fraction, 1.0)))
        self._bar.update(count - self._bar.n)

    def close(self, count: int | None = None) -> None:
        """Draw the final line (at 100% for a sized input) and end it with a newline."""
        if self.enabled:
            if count is not None:
                self._bar.n = count
            if self.sized:
                self._bar.total = self._bar.n
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# tqdm is generic in its stubs only (subscripting it at run time raises); it counts here,
# never iterates, so it has no item type to give.
class _FittedBar(tqdm):  # type: ignore[type-arg]
    """tqdm, sized by ``COLUMNS`` where the stream's terminal cannot be asked its width.

    tqdm asks the stream's own terminal (one column short, so the cursor never wraps); a
    stream that is a terminal without a descriptor to ask (an IDE's console, a test's fake
    one) would otherwise get a line of any length. ``format_dict`` is tqdm's documented
    hook for subclasses to change what a line is formatted with.
    """

    @property
    def format_dict(self) -> MutableMapping[str, Any]:
        values = super().format_dict
        if values.get("ncols") is None:
            values["ncols"] = _columns_from_environment()
        return values


def _columns_from_environment() -> int | None:
    """``COLUMNS`` less one, as tqdm sizes a terminal; ``None`` when unset or not a width."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return columns - 1 if columns > 1 else None
