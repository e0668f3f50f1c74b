"""The state layer writes Faust's RocksDB store the way Faust's recovery reads it.

``agents.checkpoint.FaustTableStore`` uses two of the store's internals (its per-partition
database and its persisted-offset key): this fails if an upgrade of faust-streaming moves
them, before a worker would restore from the wrong offset.
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.types import TP

from agents.checkpoint import FaustTableStore


def test_values_and_the_changelog_offset_land_where_faust_reads_them(tmp_path: Path) -> None:
    app = faust.App("guard", store="rocksdb://", datadir=str(tmp_path), broker="kafka://x:1")
    table = app.Table("customer_state", partitions=4, key_type=bytes, value_type=bytes)
    store = FaustTableStore(table)
    assert store.changelog_topic == "guard-customer_state-changelog"

    store.write(2, [(b"C1", b"state one"), (b"C2", b"state two")], 41)

    assert store.read(2, b"C1") == b"state one" and store.read(1, b"C1") is None
    changelog = TP(store.changelog_topic, 2)
    assert table.data.persisted_offset(changelog) == 41, "recovery resumes after offset 41"
    assert table.data.persisted_offset(TP(store.changelog_topic, 1)) is None
    assert table.data[b"C2"] == b"state two", "Faust's own read path finds the value"
