"""Bytes per customer of the state the worker stores, after realistic traffic (target < 2 KB).

The state is written to RocksDB and to its changelog on every update, so its size is paid on
every event and on every restore. What runs: seeded synthetic traffic for ``--customers``
customers over ``--days`` days through the offline engine (:class:`rules.offline.replay.Replay`,
the live engine over an in-memory store) with the example pack; then every customer's
final state, with its latest decisions as the worker keeps them, is encoded exactly as the
worker stores it (``schemas.codec.encode_state``) and measured. Prints the distribution and the
share of the bytes each part of the state takes, and what encoding and decoding one state
costs (microseconds per call, the best of ``--repeat`` passes over every state), beside
the format the previous release wrote (Zstandard without a dictionary) for comparison.

``--train-dictionary PATH`` writes a Zstandard dictionary trained on the states instead: how
``schemas/state_dictionaries/1.zdict`` was made (``--seed 11``, so the figures printed with
the default seed are measured on states the dictionary never saw)::

    python bench/state_size.py --seed 11 --train-dictionary schemas/state_dictionaries/1.zdict

Run from the repository root::

    python bench/state_size.py --customers 2000 --days 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from schemas.codec import decode_state, encode, encode_state, state_json
from schemas.decisions import Decision
from schemas.profile import CustomerProfile
from schemas.state import CustomerState

TARGET_BYTES = 2048
#: The trained dictionary's size: 16-64 KB gave the same ratio; 110 KB a little worse.
DICTIONARY_BYTES = 32 * 1024


def per_call_us(function: Callable[[Any], object], items: Sequence[Any], repeat: int) -> float:
    """Microseconds per call of ``function`` over ``items``: the best of ``repeat`` passes.

    The best pass, not the mean: on a shared machine the other passes measure the neighbours.
    """
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - began)
    return best / len(items) * 1e6


def train_dictionary(states: Sequence[CustomerState], path: Path) -> None:
    """Train a Zstandard dictionary on the states' JSON and write it to ``path``."""
    samples = [encode(state) for state in states]
    trained = zstandard.train_dictionary(DICTIONARY_BYTES, samples, threads=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(trained.as_bytes())
    print(
        f"wrote {path} ({len(trained.as_bytes()):,} bytes, id {trained.dict_id()}) from "
        f"{len(samples):,} states"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the states")
    parser.add_argument("--train-dictionary", type=Path, metavar="PATH")
    args = parser.parse_args(argv)

    replay = Replay(load_ruleset(EXAMPLE_RULES))
    config = SyntheticConfig(seed=args.seed, customers=args.customers, days=args.days)
    states: dict[str, CustomerState] = {}
    decisions: dict[str, list[Decision]] = {}
    events = 0
    for record in traffic(config):
        if isinstance(record.model, CustomerProfile):
            verdicts = replay.profile(record.model)
        else:
            verdicts = replay.event(record.model)
            events += 1
        for verdict in verdicts:
            states[verdict.state.customer_id] = verdict.state
            decisions.setdefault(verdict.state.customer_id, []).extend(verdict.decisions)
    # The worker adds the latest decisions when it stores a state (for the customer API).
    states = {c: state.with_decisions(decisions.get(c, [])) for c, state in states.items()}

    if args.train_dictionary:
        train_dictionary(list(states.values()), args.train_dictionary)
        return 0

    sizes = sorted(len(encode_state(state)) for state in states.values())
    plain = statistics.mean(len(encode(state)) for state in states.values())
    parts: Counter[str] = Counter()
    for state in states.values():
        for name, value in json.loads(encode(state)).items():
            parts[name] += len(json.dumps(value, separators=(",", ":")))
    total = sum(parts.values())
    print(
        f"{len(states):,} customers, {events:,} events over {args.days:g} days "
        f"(example pack, seed {args.seed})"
    )
    print(
        f"state bytes per customer: mean {statistics.mean(sizes):,.0f}, "
        f"p50 {sizes[len(sizes) // 2]:,}, p99 {sizes[int(len(sizes) * 0.99)]:,}, "
        f"max {sizes[-1]:,}; target < {TARGET_BYTES:,}: "
        f"{sum(s < TARGET_BYTES for s in sizes) / len(sizes):.1%} of customers meet it"
    )
    print(f"the same states as plain JSON (before compression): mean {plain:,.0f} bytes")
    print("share of the JSON bytes by part of the state:")
    for name, size in parts.most_common():
        print(f"  {name:20s} {size / total:6.1%}")
    report_costs(list(states.values()), args.repeat)
    return 0


def report_costs(states: Sequence[CustomerState], repeat: int) -> None:
    """Microseconds per state to encode and decode, today's format and the previous one."""
    stored = [encode_state(state) for state in states]
    documents = [encode(state) for state in states]
    previous = zstandard.ZstdCompressor(level=1)
    plain = zstandard.ZstdDecompressor()
    previous_stored = [b"\x02" + previous.compress(document) for document in documents]
    serializer = CustomerState.__pydantic_serializer__
    print(f"cost per state (best of {repeat} passes over {len(states):,} states, microseconds):")
    print(
        f"  format {stored[0][:1].hex()} (schemas.codec): mean "
        f"{statistics.mean(map(len, stored)):,.0f} B; encode_state "
        f"{per_call_us(encode_state, states, repeat):.1f}, decode_state "
        f"{per_call_us(decode_state, stored, repeat):.1f}, state_json "
        f"{per_call_us(state_json, stored, repeat):.1f}"
    )
    print(
        f"  format 02 (plain Zstandard level 1, the previous release): mean "
        f"{statistics.mean(map(len, previous_stored)):,.0f} B; compress "
        f"{per_call_us(previous.compress, documents, repeat):.1f}, decompress "
        f"{per_call_us(lambda raw: plain.decompress(raw[1:]), previous_stored, repeat):.1f}"
    )
    print(
        f"  of which the JSON (pydantic-core, both formats): to_json "
        f"{per_call_us(serializer.to_json, states, repeat):.1f}, model_validate_json "
        f"{per_call_us(CustomerState.model_validate_json, documents, repeat):.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
