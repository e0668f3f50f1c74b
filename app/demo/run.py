"""``kairos demo``: the embedded product in one command.

Starts the bundled Tansu broker on a free 127.0.0.1 port, creates the topics, starts a
real ``kairos worker`` with the example rules and a real ``kairos console`` beside it (its
own process, as in production), feeds them seeded synthetic bank traffic and prints every
action and dead letter as it comes out, with a running summary. Ctrl-C (or
``--duration``) stops every process it started, by PID.

The console's sign-in token and the workers' customer API token are random for each run;
the console's URL and token are printed once the console is up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from app.demo.channels import ChannelSimulator
from app.kafka import EmbeddedBroker, WorkerProcess, ensure_topics
from app.kafka.processes import ConsoleProcess, WorkerStartError
from app.settings import EXAMPLE_RULES
from app.synthetic import (
    DEFAULT_START,
    SyntheticConfig,
    SyntheticRecord,
    poison_messages,
    traffic,
)
from schemas.actions import Channel
from schemas.codec import encode, encode_event
from schemas.profile import CustomerProfile
from schemas.topics import TopicNames

PARTITIONS = 4
_SUMMARY_EVERY_S = 10.0
_POISON_EVERY = 500  # one bad message per this many events, to show the dead-letter path
_PERIOD_DAYS = 14  # under 30 days, so the generator spreads salaries across the period


@dataclass(frozen=True)
class DemoOptions:
    customers: int = 2000
    seed: int = 7
    speed: float = 300.0
    duration: float = 0.0
    web_port: int = 6066
    rules_path: Path | None = None
    console_port: int = 6070


class _Stop:
    """Set by Ctrl-C / SIGTERM, or by the duration running out."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def _describe_action(value: dict[str, object]) -> str:
    params = value.get("params") or {}
    wave = f" [wave {value['wave']} of {value['campaign']}]" if value.get("wave") else ""
    return (
        f"{str(value['channel']).upper():<4} {value['customer_id']:<8} "
        f"{value['rule_id']}{wave} -> {value['template']} "
        f"{json.dumps(params, ensure_ascii=False)}"
    )


def _watch(
    bootstrap: str,
    topics: TopicNames,
    stop: threading.Event,
    counts: Counter[str],
    channels_answer: Callable[[dict[str, Any]], None],
) -> None:
    """Print actions and dead letters as they arrive; count decisions by outcome."""
    channels = {topics.actions(c): c for c in Channel}
    consumer = KafkaConsumer(
        *channels,
        topics.decisions,
        topics.dead_letter,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        consumer_timeout_ms=500,
    )
    try:
        while not stop.is_set():
            for record in consumer:
                value = json.loads(record.value)
                if record.topic in channels:
                    counts[f"action:{value['channel']}"] += 1
                    counts["waves"] += int(value.get("wave") or 1) > 1  # the follow-ups
                    print(f"  action  {_describe_action(value)}", flush=True)
                    channels_answer(value)
                elif record.topic == topics.decisions:
                    counts[f"decision:{value['outcome']}:{value['reason_code']}"] += 1
                else:
                    counts["dead_letter"] += 1
                    print(f"  DLQ     {value['error_type']}: {value['reason'][:100]}", flush=True)
                if stop.is_set():
                    break
    finally:
        consumer.close()


def _summary(counts: Counter[str], produced: int, started: float, timeline: _Timeline) -> str:
    actions = {c.value: counts.get(f"action:{c.value}", 0) for c in Channel}
    suppressed = sum(v for k, v in counts.items() if k.startswith("decision:suppressed"))
    held_out = sum(v for k, v in counts.items() if k.startswith("decision:held_out"))
    feedback = {
        k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("feedback:")
    }
    reported = " ".join(f"{status}={n}" for status, n in feedback.items()) or "none yet"
    return (
        f"[{time.monotonic() - started:5.0f}s | simulated {timeline.now():%a %d %b %H:%M}] "
        f"events {produced}, "
        f"actions sms={actions['sms']} push={actions['push']} rm={actions['rm']} "
        f"(later waves {counts.get('waves', 0)}), "
        f"suppressed {suppressed}, held out {held_out}, "
        f"dead letters {counts.get('dead_letter', 0)}; channels reported {reported}"
    )


def run_demo(options: DemoOptions) -> int:
    """Run until Ctrl-C or ``options.duration``; returns a process exit code."""
    stop = _Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    workdir = Path(tempfile.mkdtemp(prefix="kairos-demo-"))
    topics = TopicNames("kairos")
    timeline = _Timeline(DEFAULT_START, time.time(), options.speed)
    print(f"Kairos demo — logs and state in {workdir}")
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        print(f"Embedded broker (Tansu, pid {broker.pid}) on {broker.bootstrap}")
        ensure_topics(broker.bootstrap, topics, PARTITIONS)
        version = _deploy_rules([broker.bootstrap], topics, options.rules_path or EXAMPLE_RULES)
        print(f"Rules {version} deployed (the console shows their text and history)")
        env = {
            "KAIROS_BROKER_URL": broker.url,
            "KAIROS_BROKER_FLAVOR": "tansu",
            "KAIROS_PARTITIONS": str(PARTITIONS),
            "KAIROS_STATE_DIR": str(workdir / "state"),
            "KAIROS_RULES_PATH": str(options.rules_path or EXAMPLE_RULES),
            # The worker's clock runs in the same simulated time as the events.
            "KAIROS_CLOCK_ORIGIN": timeline.origin.isoformat(),
            "KAIROS_CLOCK_WALL_ORIGIN": repr(timeline.wall_origin),
            "KAIROS_CLOCK_SPEED": repr(options.speed),
            # The console's customer page asks the worker's customer API with it.
            "KAIROS_CUSTOMER_API_TOKEN": secrets.token_urlsafe(24),
        }
        with (
            WorkerProcess(env, options.web_port, workdir / "worker.log") as worker,
            contextlib.ExitStack() as console_stack,
        ):
            print(f"Worker pid {worker.pid} starting; metrics at {worker.base_url}/metrics")
            took = worker.wait_ready()
            supervisor = _Supervisor(worker, stop.event)
            supervisor.start()
            print(f"Worker ready in {took:.1f}s.")
            _start_console(console_stack, env, options, worker, workdir)
            print(
                f"Replaying {options.customers} synthetic customers at {options.speed:g}x "
                f"(one simulated hour every {3600 / options.speed:.0f}s).\n"
            )
            counts: Counter[str] = Counter()
            channels = ChannelSimulator(
                broker.bootstrap,
                topics.feedback,
                timeline.wall_time_of,
                stop.event,
                counts,
                seed=options.seed,
            )
            channels.start()
            watcher = threading.Thread(
                target=_watch,
                args=(broker.bootstrap, topics, stop.event, counts, channels.answer),
                daemon=True,
            )
            watcher.start()
            started = time.monotonic()
            try:
                produced = _produce(
                    broker.bootstrap, topics, options, timeline, stop.event, counts, channels.know
                )
                time.sleep(1.0)  # let the last actions arrive before the final summary
            finally:
                stop.event.set()
                supervisor.halt()  # nothing restarted behind the worker's stop below
            watcher.join(timeout=5)
            channels.join(timeout=5)
            print("\n" + _summary(counts, produced, started, timeline))
            print("Stopping worker and broker...")
    print("Stopped.")
    return 0


def _deploy_rules(bootstrap: list[str], topics: TopicNames, path: Path) -> str:
    """Publish the demo's rules as the first deployed version, as ``kairos rules deploy`` does.

    The worker would run them from ``KAIROS_RULES_PATH`` anyway; deployed, they are also on
    the rules topic, where the console reads each rule's text and version history and its
    Deploys page has a version to show (and later ones to roll back to).
    """
    from datetime import UTC

    from app.kafka import RulesTopic
    from rules.deployments import compile_files
    from schemas.deployment import RulesetBundle

    files, ruleset = compile_files(path)
    topic = RulesTopic(bootstrap, topics)
    bundle = RulesetBundle(
        version=ruleset.version,
        files=files,
        deployed_at=datetime.now(UTC),
        deployed_by="kairos demo",
        comment="the demo's rules",
    )
    return topic.deploy(bundle, topic.read()).version


def _start_console(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    options: DemoOptions,
    worker: WorkerProcess,
    workdir: Path,
) -> ConsoleProcess | None:
    """Start ``kairos console`` beside the worker and print its URL and sign-in token.

    A console that does not come up is reported, with its log, and the demo goes on: the
    worker and the printed actions do not depend on it.
    """
    token = secrets.token_urlsafe(18)
    console_env = {
        **env,
        "KAIROS_CONSOLE_TOKEN": token,
        "KAIROS_CONSOLE_STORE_PATH": str(workdir / "console" / "console.duckdb"),
        "KAIROS_CONSOLE_WORKER_URLS": worker.base_url,
    }
    console = ConsoleProcess(console_env, options.console_port, workdir / "console.log")
    stack.enter_context(console)
    try:
        console.wait_ready(timeout=60.0)
    except WorkerStartError as exc:
        print(f"The console did not start ({exc}); the demo goes on without it", flush=True)
        return None
    print(
        f"Console on {console.base_url} (pid {console.pid}): sign in with any name and the "
        f"token {token}",
        flush=True,
    )
    return console


class _Supervisor(threading.Thread):
    """Restarts the worker if it exits on its own, as compose's restart policy would.

    A worker whose agent fails stops itself (crash-only) so that a new process resumes from
    the last committed offset; in production the orchestrator starts that process, and here
    the demo plays the orchestrator, so a crash shows up as a line and a short gap, not as a
    demo that silently stops deciding.
    """

    def __init__(self, worker: WorkerProcess, stop: threading.Event) -> None:
        super().__init__(name="worker-supervisor", daemon=True)
        self.worker = worker
        self.stop = stop
        self._restarting = threading.Lock()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            with self._restarting:
                if self.stop.is_set() or self.worker.is_running():
                    continue
                code = self.worker.exit_code
                self.worker.start()
                print(
                    f"Worker exited with code {code}; restarted as pid {self.worker.pid}, "
                    "resuming from the last committed offset",
                    flush=True,
                )

    def halt(self) -> None:
        """No restart after this returns (``stop`` must be set first)."""
        with self._restarting:
            pass


@dataclass(frozen=True)
class _Timeline:
    """Simulated time = origin + (wall - wall_origin) * speed, for the demo and its worker."""

    origin: datetime
    wall_origin: float
    speed: float

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.time() - self.wall_origin) * self.speed)

    def wall_time_of(self, moment: datetime) -> float:
        return self.wall_origin + (moment - self.origin).total_seconds() / self.speed


def _endless_traffic(options: DemoOptions) -> Iterator[SyntheticRecord]:
    """Synthetic fortnights back to back (a new seed each), so the demo runs until stopped."""
    for period in itertools.count():
        yield from traffic(
            SyntheticConfig(
                seed=options.seed + period,
                customers=options.customers,
                start=DEFAULT_START + timedelta(days=_PERIOD_DAYS * period),
                days=float(_PERIOD_DAYS),
            )
        )


def _produce(
    bootstrap: str,
    topics: TopicNames,
    options: DemoOptions,
    timeline: _Timeline,
    stop: threading.Event,
    counts: Counter[str],
    know: Callable[[CustomerProfile], None],
) -> int:
    """Produce each record when the simulated clock reaches it, with its simulated times.

    ``know`` tells the simulated channel systems of each profile (tier and time zone).
    """
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    poison = itertools.cycle(list(poison_messages(random.Random(options.seed))))
    started = time.monotonic()
    next_summary = started + _SUMMARY_EVERY_S
    produced = 0
    try:
        for record in _endless_traffic(options):
            if stop.is_set() or (
                options.duration and time.monotonic() - started > options.duration
            ):
                break
            delay = timeline.wall_time_of(record.at) - time.time()
            if delay > 0 and stop.wait(delay):
                break
            if isinstance(record.model, CustomerProfile):
                profile = record.model
                know(profile)
                producer.send(
                    topics.profile, key=profile.customer_id.encode(), value=encode(profile)
                )
                continue
            event = record.model
            producer.send(
                topics.for_event_type(event.event_type),
                key=event.customer_id.encode(),
                value=encode_event(event),
            )
            produced += 1
            if produced % _POISON_EVERY == 0:
                key, raw = next(poison)
                producer.send(topics.drop_off, key=key, value=raw)
            if time.monotonic() >= next_summary:
                print(_summary(counts, produced, started, timeline), flush=True)
                next_summary += _SUMMARY_EVERY_S
    finally:
        producer.flush()
        producer.close()
    return produced
