"""Builders shared by the tests and the benchmarks: messages, rulesets, schema strategies.

Not part of the product (not installed): a checkout's tests and ``bench/`` scripts import it
from the repository root, so the benchmarks need nothing from ``tests/``.

``factories``          wire-format profiles and events, valid by default, any field overridable
``rulesets``           inline YAML rulesets (immediate rules on every channel, a broken rule)
``schema_strategies``  Hypothesis strategies for anything the published JSON Schemas allow
``stores``             a state layer's stored side (RocksDB partitions) in dicts
"""
