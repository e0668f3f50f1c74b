"""The offline drivers: the live engine over recorded input, with event time as the clock.

``replay`` feeds inputs through the engine's dispatcher with an in-memory store;
``backtest`` sums a replay up per rule, channel and day; ``compare`` sets two backtests
side by side; ``report`` computes campaign figures (uplift and its interval) from decisions
and conversions; ``testing`` runs the YAML rule tests. Numbers only: rendering is app/'s.
"""

from rules.offline.backtest import Backtest, BacktestReport
from rules.offline.compare import compare
from rules.offline.replay import Replay

__all__ = ["Backtest", "BacktestReport", "Replay", "compare"]
