"""``kairos backtest`` around the pure engine: inputs in, a report out for marketing ops.

Reads recorded events (JSONL files, or the live input topics over a time range), drives
:mod:`rules.offline.backtest` with a progress bar, and renders the report as a table, CSV and an
HTML chart. The numbers themselves are the core's.
"""

from app.backtest.kafka_source import TopicRangeSource
from app.backtest.output import counts_text, render_diff, render_table, report_files
from app.backtest.run import BacktestInputError, Responses, run_backtest

__all__ = [
    "BacktestInputError",
    "Responses",
    "TopicRangeSource",
    "counts_text",
    "render_diff",
    "render_table",
    "report_files",
    "run_backtest",
]
