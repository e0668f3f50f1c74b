"""Backtest speed: events per second through the offline engine on one core (target 50,000).

``kairos backtest`` parses recorded events and runs them through
:class:`rules.offline.replay.Replay` (the live engine over an in-memory state store, event
time as the clock); issue 6 asks for at least 50,000 events/s with the example pack. What
runs: seeded synthetic traffic for ``--customers`` customers over ``--days`` days, built
in memory, then timed separately

* (a) parsing: ``schemas.codec.decode_event`` on every event's JSON bytes;
* (b) engine: ``Replay.event`` over the pre-parsed events (profiles fed first, untimed);
* (c) both, one after the other per event, as a backtest over a JSONL file does;
* (d) a whole ``Backtest`` over the pre-parsed events, its counting included, without and
  with the simulated channels answering every contact (``rules.offline.responses``): the
  difference is what hearing back costs per input event (the reports, the contact
  statuses, the waves they end or send).

The garbage collector is tuned as ``kairos backtest`` tunes it (``app.garbage``). Every
pass is repeated and the median reported, per wall second and per CPU second of this
process (the machine is shared: the CPU figure is the steadier one). The script also
prints a SHA-256 digest of everything the engine produced — each verdict's actions,
decisions, timer changes, wake-up time, conversions, RM requests, failures and flags, and
every customer's final state, serialised with ``schemas.codec.encode`` — so an optimisation
of the engine can prove it changed nothing: the digest must not move.

Run from the repository root::

    python bench/replay_speed.py --customers 2000 --days 3 --seed 7
    python bench/replay_speed.py --customers 500 --days 14 --generated-rules 100
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.garbage import tune_for_batch
from app.settings import EXAMPLE_RULES
from app.synthetic import SyntheticConfig, traffic
from rules.engine import Verdict
from rules.language.loader import compile_sources, load_ruleset
from rules.offline.backtest import Backtest
from rules.offline.replay import Replay
from rules.offline.responses import ResponseModel
from rules.ruleset import Ruleset
from schemas.codec import decode_event, encode, encode_event
from schemas.events import Event
from schemas.profile import CustomerProfile

TARGET = 50_000


@dataclass(frozen=True)
class Workload:
    """Profiles to feed first, then the records in traffic order, and every event's bytes."""

    profiles: list[CustomerProfile]
    records: list[Event | CustomerProfile]
    raw: list[bytes]
    events: int


@dataclass(frozen=True)
class Timing:
    """One timed pass: wall seconds, and this process's CPU seconds (robust to neighbours)."""

    wall: float
    cpu: float


def build_workload(customers: int, days: float, seed: int) -> Workload:
    """Seeded traffic in memory; the leading profiles are fed untimed, as a backtest does."""
    profiles: list[CustomerProfile] = []
    records: list[Event | CustomerProfile] = []
    for record in traffic(SyntheticConfig(seed=seed, customers=customers, days=days)):
        model = record.model
        if isinstance(model, CustomerProfile) and not records:
            profiles.append(model)
        else:
            records.append(model)
    raw = [encode_event(r) for r in records if not isinstance(r, CustomerProfile)]
    return Workload(profiles, records, raw, len(raw))


def build_ruleset(generated_rules: int) -> Ruleset:
    """The example pack, or the example features plus ``generated_rules`` generated rules."""
    if not generated_rules:
        return load_ruleset(EXAMPLE_RULES)
    from rules_scaling import sources  # bench/ is on sys.path when run as a script

    return compile_sources(sources(generated_rules))


def run_parse(work: Workload) -> Timing:
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for raw in work.raw:
        decode_event(raw)
    return Timing(time.perf_counter() - started, time.process_time() - cpu)


def _fresh_replay(ruleset: Ruleset, work: Workload) -> Replay:
    replay = Replay(ruleset)
    for profile in work.profiles:
        replay.profile(profile)
    return replay


def _timed_replay(
    ruleset: Ruleset, work: Workload, event_of: Callable[[Event], Event]
) -> tuple[Timing, int]:
    """Time Replay over the workload, each event passed through ``event_of`` first.

    Verdicts are not kept: each holds a whole state, and keeping ~100k of them makes the
    garbage collector's full passes, not the engine, dominate the figure.
    """
    replay = _fresh_replay(ruleset, work)
    actions = 0
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for record in work.records:
        if isinstance(record, CustomerProfile):
            verdicts = replay.profile(record)
        else:
            verdicts = replay.event(event_of(record))
        for verdict in verdicts:
            actions += len(verdict.actions)
    return Timing(time.perf_counter() - started, time.process_time() - cpu), actions


def _repeated(
    run: Callable[[Ruleset, Workload], tuple[Timing, int]],
    ruleset: Ruleset,
    work: Workload,
    repeat: int,
    counts: set[int],
) -> list[Timing]:
    """``repeat`` timings of ``run``; the action count of each goes into ``counts``."""
    timings = []
    for _ in range(repeat):
        seconds, actions = run(ruleset, work)
        timings.append(seconds)
        counts.add(actions)
    return timings


def run_engine(ruleset: Ruleset, work: Workload) -> tuple[Timing, int]:
    """Time Replay over pre-parsed events; count the actions (a backtest aggregates them)."""
    return _timed_replay(ruleset, work, lambda event: event)


def run_both(ruleset: Ruleset, work: Workload) -> tuple[Timing, int]:
    """Time decoding each event's bytes and then replaying it, as a backtest over JSONL does."""
    raw = iter(work.raw)
    return _timed_replay(ruleset, work, lambda _: decode_event(next(raw)))


def run_backtest(
    ruleset: Ruleset, work: Workload, responses: ResponseModel | None
) -> tuple[Timing, int]:
    """Time a whole Backtest over pre-parsed events; the simulated reports it replayed."""
    backtest = Backtest(ruleset, responses=responses)
    for profile in work.profiles:
        backtest.profile(profile)
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for record in work.records:
        if isinstance(record, CustomerProfile):
            backtest.profile(record)
        else:
            backtest.event(record)
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    return timing, len(backtest.feedback_seen)


def _hash_verdict(sha: Any, verdict: Verdict) -> None:
    parts = [
        verdict.state.customer_id,
        f"dup={verdict.duplicate} late={verdict.late}",
        "evaluated=" + ",".join(verdict.evaluated),
        "timers=" + ",".join(f"{t.rule_id}:{t.change}" for t in verdict.timers),
        "failures=" + ",".join(f"{f.rule_id}:{f.error}" for f in verdict.failures),
        f"wake={verdict.wake_up_at.isoformat() if verdict.wake_up_at else None}",
    ]
    sha.update("\x1f".join(parts).encode())
    for group in (verdict.actions, verdict.decisions, verdict.conversions, verdict.rm_requests):
        sha.update(b"\x1e")
        for model in group:
            sha.update(encode(model))
            sha.update(b"\x1d")


def digest(ruleset: Ruleset, work: Workload, *, decode: bool) -> tuple[str, int]:
    """SHA-256 over every output of an untimed run and every final state, in a fixed order.

    The engine is deterministic, so one untimed pass proves what the timed ones produced;
    the action counts of the timed passes are checked against it.
    """
    sha = hashlib.sha256()
    replay = Replay(ruleset)
    actions = 0
    for profile in work.profiles:
        for verdict in replay.profile(profile):
            _hash_verdict(sha, verdict)
    raw = iter(work.raw)
    for record in work.records:
        if isinstance(record, CustomerProfile):
            verdicts = replay.profile(record)
        else:
            verdicts = replay.event(decode_event(next(raw)) if decode else record)
        for verdict in verdicts:
            _hash_verdict(sha, verdict)
            actions += len(verdict.actions)
    sha.update(b"\x00states")
    for customer_id in sorted(replay.states):
        sha.update(encode(replay.states[customer_id]))
    sha.update(repr(sorted(replay.rm_counters.items())).encode())
    sha.update(f"clock={replay.clock}".encode())
    return sha.hexdigest(), actions


def _rate(events: int, timings: list[Timing]) -> str:
    wall = [events / t.wall for t in timings]
    cpu = [events / t.cpu for t in timings]
    return (
        f"median {statistics.median(wall):9,.0f} events/s wall, "
        f"{statistics.median(cpu):9,.0f} per CPU second  (wall runs: "
        + ", ".join(f"{r:,.0f}" for r in wall)
        + ")"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each pass")
    parser.add_argument(
        "--generated-rules",
        type=int,
        default=0,
        help="instead of the example pack: its features plus N generated rules "
        "(bench/rules_scaling.py)",
    )
    parser.add_argument("--only", choices=["a", "b", "c", "d"], help="time one pass only")
    parser.add_argument("--profile", type=int, default=0, help="cProfile (b); print top N")
    args = parser.parse_args(argv)

    tune_for_batch()  # as `kairos backtest` runs
    ruleset = build_ruleset(args.generated_rules)
    work = build_workload(args.customers, args.days, args.seed)
    pack = f"{args.generated_rules} generated rules" if args.generated_rules else "example pack"
    print(
        f"{work.events:,} events, {args.customers:,} customers x {args.days:g} days, "
        f"seed {args.seed}, {pack}, {len(ruleset.rules)} rules"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_engine(ruleset, work)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        return 0

    expected, expected_actions = digest(ruleset, work, decode=True)
    if args.only in (None, "a"):
        parse = [run_parse(work) for _ in range(args.repeat)]
        print(f"(a) decode_event        {_rate(work.events, parse)}")
    counts: set[int] = {expected_actions}
    if args.only in (None, "b"):
        engine = _repeated(run_engine, ruleset, work, args.repeat, counts)
        print(f"(b) Replay.event        {_rate(work.events, engine)}")
    if args.only in (None, "c"):
        both = _repeated(run_both, ruleset, work, args.repeat, counts)
        print(f"(c) decode + replay     {_rate(work.events, both)}  (target {TARGET:,})")
    if args.only in (None, "d"):
        timed = {
            label: [run_backtest(ruleset, work, model) for _ in range(args.repeat)]
            for label, model in (("silent", None), ("answering", ResponseModel(seed=args.seed)))
        }
        for label, runs in timed.items():
            print(f"(d) Backtest, {label:<9} {_rate(work.events, [t for t, _ in runs])}")
        silent, answering = (
            statistics.median(t.cpu for t, _ in timed[k]) for k in ("silent", "answering")
        )
        reports = timed["answering"][0][1]
        print(
            f"    hearing back: {reports:,} simulated reports, "
            f"{(answering - silent) / work.events * 1e6:+.2f} us of CPU per input event "
            f"({(answering - silent) / max(reports, 1) * 1e6:.1f} us per report)"
        )
    if args.only is None and digest(ruleset, work, decode=False)[0] != expected:
        print("DIGESTS DIFFER between decoded and pre-parsed events")
        return 1
    if len(counts) != 1:
        print(f"ACTION COUNTS DIFFER between runs: {sorted(counts)}")
        return 1
    print(f"{expected_actions:,} actions")
    print(f"digest sha256:{expected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
