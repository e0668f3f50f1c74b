"""What the Faust runtime needs to know to run, and nothing more.

``app/`` owns the one settings object (``KAIROS_*`` variables, demo and broker knobs) and
builds this from it; the runtime never sees the whole settings, so it cannot come to depend
on what belongs to the command line, the demo or the embedded broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rules.engine import EngineOptions
from schemas.topics import TopicNames

#: A fetch from the rules topic waits at most this long for data (Tansu holds every fetch
#: open this long even while data is there, so it is also the watcher's delay).
RULES_FETCH_MAX_WAIT_MS = 100


@dataclass(frozen=True)
class RuntimeConfig:
    """The agents', tables' and timers' configuration."""

    topics: TopicNames
    #: Partitions of every Kairos topic and state table.
    partitions: int
    #: Kafka bootstrap servers, for the rules watcher's own consumer.
    bootstrap: tuple[str, ...]
    engine: EngineOptions = field(default_factory=EngineOptions)
    #: Input messages larger than this are dead-lettered unparsed.
    max_message_bytes: int = 64 * 1024
    rocksdb_block_cache_bytes: int = 64 * 1024 * 1024
    #: Messages decided together, and how long a batch waits to fill.
    batch_max_messages: int = 500
    batch_window_s: float = 0.01
    #: Seconds of batches one checkpoint holds (0: one batch each): a customer changed in
    #: several is written once.
    checkpoint_interval_s: float = 0.5
    #: Customers whose decoded state stays in memory between batches (LRU beyond it).
    state_cache_customers: int = 10_000
    #: How often the scheduler looks for due timers.
    timer_check_interval_s: float = 1.0
