"""State at scale: a million customers in RocksDB — disk, restore time, worker memory.

A worker that loses its disk rebuilds every customer's state from the state table's
changelog before it may decide again, so the restore time is the outage a lost node costs,
and bytes per customer on disk and the worker's memory are what a node must be sized for.

What runs, on the embedded broker (Tansu, memory storage):

1. **Realistic states.** Seeded synthetic traffic for ``--templates`` customers over
   ``--days`` days through the offline engine (:class:`rules.offline.replay.Replay`, the live engine
   over an in-memory store) with the example pack, as ``bench/state_size.py`` does; each
   final state keeps its latest decisions as the worker stores them.
2. **A million customers.** The templates are *cloned* under new customer ids (the state's
   ``customer_id``, its profile's and any kept start event's): customer ``i`` is template
   ``i % templates``. Byte sizes and shapes are therefore real, but only ``--templates``
   distinct histories exist (RocksDB's block compression may gain a little from that).
3. **The changelog, as the worker writes it.** Topic name, partition count and the RocksDB
   paths are read from the worker's own Faust app (``agents.pipeline.install``); keys are
   the customer id's bytes and values come from ``schemas.codec.encode_state`` — the function
   ``agents/processor.py`` stores states with, imported so the bench follows the codec when
   it changes. A customer's partition is murmur2 of its key, the partitioner of the
   repository's producers (kafka-python's default): the worker writes a state to the
   partition its input arrived on.
4. **Restore.** ``kairos worker`` (:class:`app.kafka.WorkerProcess`) starts on an empty
   state directory; Faust restores every table partition from its changelog before
   ``/readyz`` answers 200 (``agents.health.is_ready``: recovery completed and not rebalancing).
   The restore is then *proven complete*: a sample of customers is read back through
   ``/customers/{id}`` and compared field by field, and, with the worker stopped, every
   RocksDB partition is read (read-only) and its key count and an order-independent digest
   of every key and value are compared with what was produced.
5. **Disk and memory.** ``du`` of the table's RocksDB directories after the restore, again
   after an offline full compaction (opened with Faust's own RocksDB options); the worker's
   VmRSS and VmHWM after the restore; and, for contrast, the start-up time of a worker that
   kept its local state.

The worker's clock is pinned to the synthetic month's first day (``KAIROS_CLOCK_ORIGIN``):
with real time every absence timer kept in the states would be long overdue and fire the
moment the worker is ready, rewriting those customers' states while they are being checked.

Run from the repository root. Memory: the broker holds the whole changelog in RAM (0.9 GiB
for a million customers of ~0.9 KB) and the worker's RocksDB block caches fill on the first
full scan; ``--max-gib`` stops the run first. A million customers take about 5 minutes, the
restore itself ~36 s (it was 124 s before ``app.worker.faust_fixes`` fixes 3 and 4 and the
dictionary-compressed state of ``schemas.codec``)::

    python bench/state_scale.py --customers 1000000
    python bench/state_scale.py --customers 50000 --templates 300   # a quick run, ~2 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rocksdict
from aiokafka import AIOKafkaProducer
from faust.stores.rocksdb import RocksDBOptions
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner.default import murmur2

from agents import pipeline
from agents.metrics import Metrics
from app.kafka import EmbeddedBroker, WorkerProcess, ensure_topics, free_port
from app.settings import EXAMPLE_RULES, Settings
from app.synthetic import SyntheticConfig, traffic
from app.worker import create_app, runtime_config
from rules.language.loader import load_ruleset
from rules.offline.replay import Replay
from schemas.codec import encode_state
from schemas.decisions import Decision
from schemas.profile import CustomerProfile
from schemas.state import CustomerState, state_view
from schemas.topics import TopicNames

REPO = Path(__file__).resolve().parent.parent
PREFIX = "scale"
GiB = 1024**3
MiB = 1024**2
#: Faust keeps each partition's changelog offset in the partition's own database.
FAUST_KEY_PREFIX = b"__faust"


# -- 1. realistic states ------------------------------------------------------------------


def build_templates(count: int, days: float, seed: int) -> tuple[list[CustomerState], datetime]:
    """Final states of ``count`` customers after ``days`` of seeded traffic; and its start."""
    replay = Replay(load_ruleset(EXAMPLE_RULES))
    config = SyntheticConfig(seed=seed, customers=count, days=days)
    states: dict[str, CustomerState] = {}
    decisions: dict[str, list[Decision]] = {}
    for record in traffic(config):
        if isinstance(record.model, CustomerProfile):
            verdicts = replay.profile(record.model)
        else:
            verdicts = replay.event(record.model)
        for verdict in verdicts:
            states[verdict.state.customer_id] = verdict.state
            decisions.setdefault(verdict.state.customer_id, []).extend(verdict.decisions)
    # The worker stores each state with its latest decisions (for the customer API).
    return [states[c].with_decisions(decisions.get(c, [])) for c in sorted(states)], config.start


def customer_id(index: int) -> str:
    """The synthetic generator's id format, one digit wider so a million fit."""
    return f"C{index + 1:07d}"


def clone(template: CustomerState, new_id: str) -> CustomerState:
    """``template`` as the state of customer ``new_id``: every copy of the id replaced."""
    update: dict[str, Any] = {
        "customer_id": new_id,
        "timers": [
            t.model_copy(update={"start_event": _with_id(t.start_event, new_id)})
            for t in template.timers
        ],
        "goals": [
            g.model_copy(update={"start_event": _with_id(g.start_event, new_id)})
            for g in template.goals
        ],
    }
    if template.profile is not None:
        update["profile"] = template.profile.model_copy(update={"customer_id": new_id})
    return template.model_copy(update=update)


def _with_id(event: dict[str, Any], new_id: str) -> dict[str, Any]:
    return {**event, "customer_id": new_id} if "customer_id" in event else event


def customer(templates: Sequence[CustomerState], index: int) -> CustomerState:
    """Customer ``index`` of the million: a pure function, so any one can be rebuilt later."""
    return clone(templates[index % len(templates)], customer_id(index))


def partition_for(key: bytes, partitions: int) -> int:
    """The partition kafka-python's default partitioner (the repo's producers) picks."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


# -- 2. the changelog -----------------------------------------------------------------------


@dataclass
class Fingerprint:
    """What one partition must hold: keys, bytes, and a digest that ignores order."""

    keys: int = 0
    key_bytes: int = 0
    value_bytes: int = 0
    digest: int = 0

    def add(self, key: bytes, value: bytes) -> None:
        self.keys += 1
        self.key_bytes += len(key)
        self.value_bytes += len(value)
        record = hashlib.blake2b(key, digest_size=8)
        record.update(b"\0")
        record.update(value)
        self.digest = (self.digest + int.from_bytes(record.digest(), "big")) % 2**64


@dataclass(frozen=True)
class Table:
    """The worker's state table as its own Faust app declares it."""

    changelog: str
    partitions: int
    paths: list[Path]


def worker_table(settings: Settings) -> Table:
    """Ask the worker's Faust app (not a copy of its conventions) for names and paths."""
    app = create_app(settings)
    config = runtime_config(settings)
    installed = pipeline.install(app, config, load_ruleset(EXAMPLE_RULES), Metrics())
    table = installed.state
    partitions = int(table.partitions)
    return Table(
        changelog=table.changelog_topic.get_topic_name(),
        partitions=partitions,
        paths=[Path(table.data.partition_path(p)) for p in range(partitions)],
    )


def create_changelog(bootstrap: str, table: Table) -> None:
    """Create the changelog compacted, with the table's partitions, as Faust would."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="state-scale")
    try:
        admin.create_topics(
            [
                NewTopic(
                    name=table.changelog,
                    num_partitions=table.partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
        )
    finally:
        admin.close()


async def produce_changelog(
    bootstrap: str,
    table: Table,
    templates: Sequence[CustomerState],
    customers: int,
    guard: MemoryGuard,
) -> list[Fingerprint]:
    """Write every customer's state to the changelog; return what each partition must hold.

    States are built and encoded as they are sent, so the bench never holds the million in
    memory; acknowledgements are awaited every few thousand records.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=50,
        max_batch_size=512 * 1024,
        max_request_size=4 * MiB,
        acks=1,
    )
    fingerprints = [Fingerprint() for _ in range(table.partitions)]
    await producer.start()
    try:
        pending = []
        for index in range(customers):
            state = customer(templates, index)
            key = state.customer_id.encode()
            value = encode_state(state)
            partition = partition_for(key, table.partitions)
            fingerprints[partition].add(key, value)
            pending.append(
                await producer.send(table.changelog, value, key=key, partition=partition)
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                guard.check()
            if index and index % 100_000 == 0:
                print(f"  {index:,} produced", flush=True)
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return fingerprints


# -- 3. the worker ------------------------------------------------------------------------


def rss(pid: int | None) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes, from /proc; zeros when it is gone."""
    if pid is None:
        return 0, 0
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


@dataclass
class MemoryGuard:
    """Stops the run before the shared machine runs short of memory (the broker keeps all)."""

    limit: int
    pids: dict[str, int | None] = field(default_factory=dict)

    def check(self) -> None:
        total = sum(rss(pid)[0] for pid in self.pids.values())
        if total > self.limit:
            raise MemoryError(
                f"processes of this bench use {total / GiB:.1f} GiB > --max-gib "
                f"{self.limit / GiB:.1f}; run with fewer --customers"
            )


def worker_env(
    broker: EmbeddedBroker, partitions: int, state_dir: Path, token: str, start: datetime
) -> dict[str, str]:
    """The environment the integration tests and the pipeline bench give a worker."""
    return {
        "KAIROS_BROKER_URL": broker.url,
        "KAIROS_BROKER_FLAVOR": "tansu",
        "KAIROS_APP_ID": f"{PREFIX}-app",
        "KAIROS_TOPIC_PREFIX": PREFIX,
        "KAIROS_PARTITIONS": str(partitions),
        "KAIROS_STATE_DIR": str(state_dir),
        "KAIROS_RULES_PATH": str(EXAMPLE_RULES),
        "KAIROS_CUSTOMER_API_TOKEN": token,
        "KAIROS_CLOCK_ORIGIN": start.isoformat(),
        "KAIROS_CLOCK_WALL_ORIGIN": str(time.time()),
        "KAIROS_LOG_LEVEL": "info",  # Faust's recovery and the timer index log at info
    }


@dataclass
class Start:
    """One worker start: seconds to ready, and when the log shows each recovery phase."""

    ready_s: float
    phases: dict[str, float]

    @property
    def reading_s(self) -> float | None:
        """Seconds Faust spent reading the changelogs, from its own log lines."""
        if "restoring" in self.phases and "read" in self.phases:
            return self.phases["read"] - self.phases["restoring"]
        return None


def start_worker(worker: WorkerProcess, timeout: float) -> Start:
    """Start a worker and wait for ``/readyz``: Faust answers 200 only once recovered."""
    started = time.time()
    worker.start()
    ready = worker.wait_ready(timeout)
    return Start(ready, log_phases(worker.log_path, started))


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_PHASES = {
    "restoring": "Restoring state from changelog topics",
    "read": "Done reading from changelog topics",
    "recovered": "Recovery complete",
    "timers indexed": "Indexed ",
}


def log_phases(log: Path | None, since: float) -> dict[str, float]:
    """Seconds from ``since`` to the first log line of each phase (after ``since``)."""
    if log is None or not log.exists():
        return {}
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at < since - 1:
            continue
        for phase, text in _PHASES.items():
            if phase not in found and text in line:
                found[phase] = at - since
    return found


def wait_for_timer_index(
    worker: WorkerProcess, guard: MemoryGuard, timeout: float
) -> tuple[float | None, float]:
    """Wait for the scheduler's first scan of the table after ready, timing the stall.

    The timer scheduler re-indexes every local customer on its first tick after an
    assignment, synchronously, on the event loop: at scale that is a pause of the whole
    worker right after it said it was ready. Returns the seconds until the log shows the
    index, and the slowest ``/healthz`` answer meanwhile.
    """
    assert worker.log_path is not None
    started = time.monotonic()
    slowest = 0.0
    while time.monotonic() - started < timeout:
        guard.check()
        if "Indexed " in worker.log_path.read_text(errors="replace"):
            return time.monotonic() - started, slowest
        asked = time.monotonic()
        with contextlib.suppress(OSError, ValueError):
            worker.get_json("/healthz", timeout=timeout)
        slowest = max(slowest, time.monotonic() - asked)
        time.sleep(0.1)
    return None, slowest


def check_through_api(
    worker: WorkerProcess,
    token: str,
    templates: Sequence[CustomerState],
    customers: int,
    sample: int,
    seed: int,
) -> tuple[int, float]:
    """Read ``sample`` random customers over HTTP; (how many match exactly, mean seconds)."""
    rng = random.Random(seed)
    indexes = rng.sample(range(customers), min(sample, customers))
    matched, spent = 0, 0.0
    for index in indexes:
        expected = customer(templates, index)
        request = urllib.request.Request(f"{worker.base_url}/customers/{expected.customer_id}")
        request.add_header("Authorization", f"Bearer {token}")
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            print(f"  {expected.customer_id}: HTTP {exc.code}")
            continue
        spent += time.perf_counter() - began
        want = state_view(expected)
        decisions = want.pop("recent_decisions")
        if body["state"] == want and body["recent_decisions"] == decisions:
            matched += 1
        else:
            print(f"  {expected.customer_id}: the restored state differs")
    return matched, spent / max(1, len(indexes))


# -- 4. disk --------------------------------------------------------------------------------


def disk_usage(paths: Sequence[Path]) -> tuple[int, dict[str, int]]:
    """Bytes allocated on disk (as ``du``) under ``paths``, and by kind of RocksDB file."""
    total = 0
    kinds: dict[str, int] = {}
    for root in paths:
        for directory, _, files in os.walk(root):
            for name in files:
                size = os.lstat(os.path.join(directory, name)).st_blocks * 512
                total += size
                kind = (
                    "sst"
                    if name.endswith(".sst")
                    else "wal"
                    if name.endswith(".log") and name != "LOG"
                    else "other"
                )
                kinds[kind] = kinds.get(kind, 0) + size
    return total, kinds


def disk_report(paths: Sequence[Path], customers: int) -> tuple[int, str]:
    """Bytes on disk, and "N MiB (B per customer; sst .., wal ..)" for the output."""
    total, kinds = disk_usage(paths)
    parts = ", ".join(f"{k} {v / MiB:,.0f} MiB" for k, v in sorted(kinds.items()))
    return total, f"{total / MiB:,.0f} MiB ({total / customers:,.0f} B per customer; {parts})"


def read_back(paths: Sequence[Path]) -> list[Fingerprint]:
    """Every customer key and value in each partition's database, opened read-only."""
    found = []
    for path in paths:
        part = Fingerprint()
        db = rocksdict.Rdict(
            str(path),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            for key, value in db.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)  # raw mode
                if not key.startswith(FAUST_KEY_PREFIX):
                    part.add(key, value)
        finally:
            db.close()
        found.append(part)
    return found


def compact(paths: Sequence[Path]) -> None:
    """Flush and fully compact each partition, opened as the worker opens it."""
    for path in paths:
        db = RocksDBOptions().open(path)
        try:
            db.flush()
            db.compact_range(None, None)
        finally:
            db.close()


def compression(paths: Sequence[Path]) -> str:
    """The compression RocksDB was configured with, from the newest OPTIONS file."""
    for path in paths:
        options = sorted(path.glob("OPTIONS-*"))
        if options:
            match = re.search(r"^\s*compression=(\S+)", options[-1].read_text(), re.MULTILINE)
            if match:
                return match.group(1)
    return "unknown"


# -- the run --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--templates", type=int, default=2000, help="distinct simulated histories")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4, help="KAIROS_PARTITIONS")
    parser.add_argument("--sample", type=int, default=300, help="customers read over HTTP")
    parser.add_argument("--max-gib", type=float, default=10.0, help="abort above this RSS")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to restore")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.0f} GiB RAM; "
        f"{args.customers:,} customers, {args.partitions} partitions"
    )

    began = time.monotonic()
    templates, month_start = build_templates(args.templates, args.days, args.seed)
    sizes = sorted(len(encode_state(t)) for t in templates)
    print(
        f"{len(templates):,} template states from {args.days:g} days of seeded traffic "
        f"(example pack, seed {args.seed}) in {time.monotonic() - began:.0f} s: "
        f"mean {sum(sizes) / len(sizes):,.0f} B, p50 {sizes[len(sizes) // 2]:,} B, "
        f"max {sizes[-1]:,} B (schemas.codec.{encode_state.__name__})"
    )
    print(
        f"{args.customers:,} customers = the templates cloned under new ids "
        f"(customer i has template i mod {len(templates):,})"
    )

    token = secrets.token_urlsafe(24)
    guard = MemoryGuard(int(args.max_gib * GiB))
    with (
        tempfile.TemporaryDirectory(prefix="kairos-state-scale-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        guard.pids["broker"] = broker.pid
        state_dir = Path(tmp) / "state"
        env = worker_env(broker, args.partitions, state_dir, token, month_start)
        settings = Settings(
            broker_url=broker.url,
            broker_flavor="tansu",
            app_id=env["KAIROS_APP_ID"],
            topic_prefix=PREFIX,
            partitions=args.partitions,
            state_dir=state_dir,
        )
        table = worker_table(settings)
        ensure_topics(broker.bootstrap, TopicNames(PREFIX), args.partitions)
        create_changelog(broker.bootstrap, table)

        print(f"\nProducing to {table.changelog} ({table.partitions} partitions)...")
        began = time.monotonic()
        expected = asyncio.run(
            produce_changelog(broker.bootstrap, table, templates, args.customers, guard)
        )
        produce_s = time.monotonic() - began
        value_bytes = sum(f.value_bytes for f in expected)
        key_bytes = sum(f.key_bytes for f in expected)
        print(
            f"produced {args.customers:,} records, {value_bytes / MiB:,.0f} MiB of values "
            f"(mean {value_bytes / args.customers:,.0f} B), in {produce_s:.0f} s "
            f"({args.customers / produce_s:,.0f} records/s); per partition: "
            + ", ".join(f"{f.keys:,}" for f in expected)
        )
        print(f"broker RSS after producing: {rss(broker.pid)[0] / GiB:.2f} GiB")

        worker = WorkerProcess(env, free_port(), Path(tmp) / "worker-restore.log")
        try:
            print("\nRestore: a worker on an empty state directory...")
            restore = start_worker(worker, args.timeout)
            rate = args.customers / restore.ready_s
            reading = restore.reading_s
            read_rate = f"{args.customers / reading:,.0f}" if reading else "?"
            print(
                f"ready after {restore.ready_s:.1f} s ({rate:,.0f} records/s, start-up "
                f"included); Faust's log: "
                + ", ".join(f"{k} at {v:.1f} s" for k, v in restore.phases.items())
                + f"; changelog reading {reading or 0:.1f} s ({read_rate} records/s)"
            )
            rss_ready, hwm_ready = rss(worker.pid)
            print(
                f"worker VmRSS at ready {rss_ready / MiB:,.0f} MiB, "
                f"VmHWM {hwm_ready / MiB:,.0f} MiB"
            )
            assert worker.log_path is not None
            indexed, stalled = wait_for_timer_index(worker, guard, 600)
            index_line = [
                line
                for line in worker.log_path.read_text(errors="replace").splitlines()
                if "Indexed " in line
            ]
            print(
                f"timer index rebuilt {indexed or 0:.1f} s after ready (slowest /healthz "
                f"meanwhile {stalled:.1f} s): "
                + (index_line[-1].split("] ")[-1].strip() if index_line else "no log line")
            )
            matched, per_request = check_through_api(
                worker, token, templates, args.customers, args.sample, args.seed
            )
            print(
                f"/customers/{{id}}: {matched} of {min(args.sample, args.customers)} sampled "
                f"customers restored exactly ({per_request * 1000:.1f} ms per request)"
            )
            rss_after, hwm_after = rss(worker.pid)
            print(
                f"worker VmRSS after the index and the sample {rss_after / MiB:,.0f} MiB, "
                f"VmHWM {hwm_after / MiB:,.0f} MiB; broker VmRSS "
                f"{rss(broker.pid)[0] / GiB:.2f} GiB"
            )
            _, described = disk_report(table.paths, args.customers)
            print(f"on disk, worker running: {described}")
        finally:
            worker.stop(timeout=60)

        stopped, described = disk_report(table.paths, args.customers)
        print(
            f"on disk, worker stopped: {described}; RocksDB compression: {compression(table.paths)}"
        )
        began = time.monotonic()
        found = read_back(table.paths)
        complete = all(
            (f.keys, f.digest) == (e.keys, e.digest) for f, e in zip(found, expected, strict=True)
        )
        print(
            f"read back (read-only) in {time.monotonic() - began:.0f} s: "
            f"{sum(f.keys for f in found):,} of {args.customers:,} keys; every key and value "
            f"byte-identical to the changelog: {'yes' if complete else 'NO'}"
            + ("" if complete else f" (per partition: {[f.keys for f in found]})")
        )

        print("\nRestart with the local state kept...")
        worker = WorkerProcess(env, free_port(), Path(tmp) / "worker-kept.log")
        try:
            kept = start_worker(worker, args.timeout)
            kept_rss, kept_hwm = rss(worker.pid)
            print(
                f"ready after {kept.ready_s:.1f} s; VmRSS {kept_rss / MiB:,.0f} MiB, "
                f"VmHWM {kept_hwm / MiB:,.0f} MiB"
            )
        finally:
            worker.stop(timeout=60)

        began = time.monotonic()
        compact(table.paths)
        compacted, described = disk_report(table.paths, args.customers)
        print(
            f"\non disk after a full compaction ({time.monotonic() - began:.0f} s): "
            f"{described}; raw keys + values {(key_bytes + value_bytes) / MiB:,.0f} MiB"
        )

        print(
            f"\n| customers | restore to ready | records/s | changelog reading (records/s) | "
            f"disk after restore | after compaction | worker RSS at ready (HWM) | "
            f"RSS after the first full scan | stall after ready | kept-state restart |"
            f"\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            f"\n| {args.customers:,} | {restore.ready_s:.1f} s | {rate:,.0f} | "
            f"{reading or 0:.1f} s ({read_rate}) | "
            f"{stopped / args.customers:,.0f} B/customer | "
            f"{compacted / args.customers:,.0f} B/customer | "
            f"{rss_ready / MiB:,.0f} MiB ({hwm_ready / MiB:,.0f}) | "
            f"{rss_after / MiB:,.0f} MiB | {stalled:.1f} s | {kept.ready_s:.1f} s |"
        )
        if not complete or matched != min(args.sample, args.customers):
            print("RESTORE INCOMPLETE")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
