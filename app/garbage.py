"""How Kairos's long-running processes tune Python's garbage collector, and why.

Kairos's data is immutable per customer: every event replaces its customer's state
record with a new one, so the live set is large and young, and nearly all garbage is freed
by reference counting the moment a state is replaced. Python's default thresholds
(700, 10, 10) make the cyclic collector walk that live set over and over, at about a
microsecond an object: a fifth of a busy worker's time, and 7-8 % of a backtest's. Only
reference cycles need the collector, and the engine makes few.
"""

from __future__ import annotations

import gc

#: A threshold no count reaches: the older generations are collected only on purpose.
NEVER = 2**31 - 1
#: A backtest's young generation: it has no latency to keep, only throughput.
BATCH_YOUNG_THRESHOLD = 50_000
#: Python's own count for the older generations.
DEFAULT_OLDER_THRESHOLD = 10


def tune_garbage_collector(young_threshold: int, older_threshold: int = NEVER) -> None:
    """Collect the young generation every ``young_threshold`` allocations.

    The older generations are collected every ``older_threshold`` collections of the one
    below — by default never, which is what a worker wants:

    * Python's defaults (700, 10, 10) walked the live set over and over — a fifth of a busy
      worker's time;
    * (50,000, 20, 100) made young collections rare but each one walked ~100,000 objects:
      60-100 ms with the event loop stopped, every few seconds at 1,500 contacts/s, which
      made the latency's tail;
    * 5,000 young with generation 1 still on its count made young pauses ~7 ms but each
      generation-1 collection (every 3 s) walked the live set again: 48-69 ms.

    So a worker's young collections stay short, and what survives one is left alone: the
    few cycles that age are freed by ``collect_old_garbage`` (app.worker.faust_app) on a
    timer. A backtest has no pause to avoid: :func:`tune_for_batch`.
    """
    gc.set_threshold(young_threshold, older_threshold, older_threshold)


def tune_for_batch() -> None:
    """Rare young collections, older ones on Python's own schedule (``kairos backtest``).

    A batch job minds only throughput, so one long pause now and then costs nothing; the
    older generations keep their default counts, and Python's own rule (a full collection
    only once the survivors since the last grew by a quarter) keeps full collections
    amortised over what was allocated.
    """
    tune_garbage_collector(BATCH_YOUNG_THRESHOLD, DEFAULT_OLDER_THRESHOLD)


def freeze_startup_objects() -> None:
    """Move everything alive now to the permanent generation: never scanned again."""
    gc.collect()
    gc.freeze()
