"""Bytes per customer of the state the worker stores, after realistic traffic (target < 2 KB).

The state is written to RocksDB and to its changelog on every update, so its size is paid on
every event and on every restore. What runs: seeded synthetic traffic for ``--customers``
customers over ``--days`` days through the offline engine (:class:`rules.offline.replay.Replay`,
the live engine over an in-memory store) with the example pack; then every customer's
final state, with its latest decisions as the worker keeps them, is encoded exactly as the
worker stores it (``schemas.codec.encode_state``) and measured. Prints the distribution and the
share of the bytes each part of the state takes.

Run from the repository root::

    python bench/state_size.py --customers 2000 --days 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from schemas.codec import encode, encode_state
from schemas.decisions import Decision
from schemas.profile import CustomerProfile
from schemas.state import CustomerState

TARGET_BYTES = 2048


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=3)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
