"""Backtest input straight from the live input topics, over a time range.

"What would this rule have done last week?" is best answered on last week's real traffic,
which is still on the input topics. The range is by the broker's record timestamps; the
profile topic is read from its beginning (a customer's consent may have been given long
before the range), and within the range profiles and events are merged in timestamp
order, the closest offline stand-in for the order the worker consumed them in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from app.backtest.run import Kind
from app.kafka import read_to_end
from schemas.topics import TopicNames


def _millis(moment: datetime | None, default: int) -> int:
    return default if moment is None else int(moment.timestamp() * 1000)


class TopicRangeSource:
    """Profiles up to ``until`` and events in ``[since, until)``, by broker timestamp."""

    def __init__(
        self,
        bootstrap: Sequence[str],
        topics: TopicNames,
        since: datetime | None = None,
        until: datetime | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.since = _millis(since, 0)
        self.until = _millis(until, 2**63 - 1)
        self.timeout = timeout
        self._read = 0
        self._total = 1
        self._cache: list[tuple[int, int, Kind, bytes]] | None = None

    @property
    def fraction_read(self) -> float:
        return self._read / self._total

    def recorded_feedback(self) -> Iterator[bytes]:
        """The channel reports in range (the range is read once, and kept for the replay)."""
        for _, _, kind, raw in self._merged():
            if kind == "feedback":
                yield raw

    def records(self) -> Iterator[tuple[Kind, bytes]]:
        """Everything in range, in the order the broker stamped it."""
        merged = self._merged()
        self._total = max(len(merged), 1)
        for _, _, kind, raw in merged:
            self._read += 1
            yield kind, raw

    def _merged(self) -> list[tuple[int, int, Kind, bytes]]:
        """Everything in range, read first (topics are read to their end), then ordered.

        The range is held in memory to be ordered: a few hundred bytes per event.
        """
        if self._cache is not None:
            return self._cache
        merged: list[tuple[int, int, Kind, bytes]] = []
        wanted = [self.topics.profile, self.topics.feedback, *self.topics.event_inputs]
        for sequence, record in enumerate(
            read_to_end(self.bootstrap, wanted, self.timeout, client_id="kairos-backtest")
        ):
            if record.timestamp >= self.until or record.value is None:
                continue
            kind: Kind = (
                "profile"
                if record.topic == self.topics.profile
                else "feedback"
                if record.topic == self.topics.feedback
                else "event"
            )
            if kind == "event" and record.timestamp < self.since:
                continue
            # sequence keeps each partition's own order among equal timestamps
            merged.append((record.timestamp, sequence, kind, bytes(record.value)))
        merged.sort()
        self._cache = merged
        return merged
