"""Every customer's stream merged into one, lazily, in production order."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC

from app.synthetic.config import SyntheticConfig, SyntheticRecord
from app.synthetic.customer import Customer, Item
from app.synthetic.profiles import generate_profiles


def traffic(config: SyntheticConfig) -> Iterator[SyntheticRecord]:
    """Yield every profile, then every event, in non-decreasing ``at`` order.

    Each customer is an independent generator with its own seeded ``Random``, and a heap
    merges them lazily: memory grows with the number of customers, not of events.

    Args:
        config: Run settings.

    Yields:
        Profiles first (``at == config.start``), then events, duplicates and late arrivals.

    """
    profiles = generate_profiles(config)
    start = config.start.astimezone(UTC)
    for profile in profiles:
        yield SyntheticRecord("profile", profile, start)

    ids = itertools.count(1)
    heap: list[tuple[float, int, SyntheticRecord | None, Iterator[Item]]] = []
    for index, profile in enumerate(profiles):
        rng = random.Random(f"kairos-synthetic:{config.seed}:{profile.customer_id}")
        stream = Customer(config, profile, rng, ids).run()
        first = next(stream, None)
        if first is not None:
            heap.append((first[0], index, first[1], stream))
    del profiles
    heapq.heapify(heap)
    while heap:
        at, index, record, stream = heap[0]
        # Run ahead on this customer while it stays the earliest: no heap work at all.
        size = len(heap)
        runner_up = (
            math.inf if size == 1 else heap[1][0] if size == 2 else min(heap[1][0], heap[2][0])
        )
        while True:
            if record is not None:
                yield record
            following = next(stream, None)
            if following is None:
                heapq.heappop(heap)
                break
            at, record = following
            if at > runner_up:
                heapq.heapreplace(heap, (at, index, record, stream))
                break
