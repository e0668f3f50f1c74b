"""A state layer's stored side in memory, for tests of what reads and writes it."""

from __future__ import annotations

from collections.abc import Sequence


class MemoryStore:
    """A PartitionStore in dicts: what each partition holds and its changelog offset."""

    def __init__(self) -> None:
        self.partitions: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}
        self.reads = 0

    def read(self, partition: int, key: bytes) -> bytes | None:
        self.reads += 1
        return self.partitions.get(partition, {}).get(key)

    def write(self, partition: int, items: Sequence[tuple[bytes, bytes]], offset: int) -> None:
        self.partitions.setdefault(partition, {}).update(items)
        self.offsets[partition] = offset
