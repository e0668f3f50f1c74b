"""Prometheus metrics on an explicit registry, with bounded label values only.

Labels are event types, rule ids, channels and reason codes — never customer ids — so the
series count is bounded by the ruleset, not by the customer base.
"""

from __future__ import annotations

import bisect
import collections
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from rules.engine import ACTION_PATHS
from schemas.actions import Channel
from schemas.events import EVENT_TYPES

#: Why a contact can be deferred (a subset of :class:`schemas.decisions.Reason`).
DEFERRAL_REASONS = ("quiet_hours", "rm_capacity")

#: The kinds of :class:`schemas.state.PendingTimer`.
TIMER_KINDS = ("absence", "deferred", "window", "wave")

#: Seconds from a contact to its feedback: delivery takes seconds, an open hours or days.
FEEDBACK_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0)

#: Seconds; from sub-100 ms (the target) to minutes (a worker catching up on a backlog).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

#: Seconds a checkpoint waits for the broker and RocksDB: milliseconds when healthy.
CHECKPOINT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

#: Seconds a full garbage collection stops the worker: ~1 µs per live object.
GC_FULL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Seconds an action leaves after it was due: a tick on time is under the scheduler's 1 s
#: interval, an RM queue hop a few seconds, a worker catching up minutes to an hour.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class Tally:
    """A counter with one label, counted in bulk on the hot path and rendered when scraped.

    Every candidate rule of every event counts one evaluation. prometheus-client's
    ``Counter`` takes a lock and two method calls per increment: 4.4 µs for an event with
    ten candidates. Here a whole list is counted by ``collections.Counter.update`` in C (0.7
    µs) and turned into a counter family at scrape time. The agents and the web view share
    the worker's one event loop, so no lock is needed.
    """

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry):
        self.name, self.documentation, self.label = name, documentation, label
        self.counts: collections.Counter[str] = collections.Counter()
        registry.register(self)

    def declare(self, value: str) -> None:
        """Show ``value``'s series at 0 until it is counted."""
        self.counts[value] += 0

    def count(self, values: Iterable[str]) -> None:
        self.counts.update(values)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self.counts.items():
            family.add_metric([value], count)
        yield family


#: How prometheus-client writes a bucket's ``le`` (untyped there).
_bucket_label: Callable[[float], str] = floatToGoString


class BulkHistogram:
    """A histogram observed on the hot path without locks, rendered when scraped.

    Each action is timed three ways once the broker has it (lateness, and latency since the
    event occurred and since it was ingested). prometheus-client's ``Histogram`` costs a
    ``labels()`` look-up under a lock, then a locked increment of a bucket and of the sum,
    per observation: 9-11 µs an event in a busy worker, run in the checkpoint's completion
    where every microsecond delays the next contact. Here an observation is a dict look-up,
    a ``bisect`` and two additions; the cumulative buckets are summed at scrape time. The
    exposition is the same as a ``Histogram``'s, without ``_created`` (a histogram family
    exposed this way is as Prometheus reads any). One event loop, so no lock (as
    :class:`Tally`).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ):
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{name}: buckets must be distinct and increasing: {buckets}")
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.bounds = tuple(float(bound) for bound in buckets)
        self._les = [_bucket_label(bound) for bound in self.bounds] + ["+Inf"]
        #: label values -> [count per bucket (the last is +Inf), ..., the sum of amounts]
        self._series: dict[tuple[str, ...], list[float]] = {}
        registry.register(self)

    def declare(self, *values: str) -> None:
        """Show the series of ``values`` (one per label) at 0 until it is observed."""
        self._at(values)

    def observe(self, values: tuple[str, ...], amount: float) -> None:
        series = self._series.get(values) or self._at(values)
        series[bisect.bisect_left(self.bounds, amount)] += 1
        series[-1] += amount

    def _at(self, values: tuple[str, ...]) -> list[float]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values, got {values}")
        return self._series.setdefault(values, [0] * (len(self.bounds) + 1) + [0.0])

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labels)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, series in self._series.items():
            counts, cumulative, buckets = series[:-1], 0.0, []
            for le, count in zip(self._les, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(values), buckets, sum_value=series[-1])
        yield family


@dataclass
class Metrics:
    """Every metric a worker exports; one instance per worker (tests make their own)."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.events_consumed = Counter(
            "kairos_events_consumed_total",
            "Input messages consumed, by type.",
            ["event_type"],
            registry=r,
        )
        self.events_invalid = Counter(
            "kairos_events_invalid_total",
            "Input messages rejected to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "kairos_events_duplicate_total",
            "Re-delivered events (same event_id) ignored.",
            ["event_type"],
            registry=r,
        )
        self.rule_evaluations = Tally(
            "kairos_rule_evaluations", "Rules evaluated against an event.", "rule_id", r
        )
        self.rule_fires = Counter(
            "kairos_rule_fires_total", "Rules whose conditions all held.", ["rule_id"], registry=r
        )
        self.rule_errors = Counter(
            "kairos_rule_errors_total",
            "Rule evaluations that raised at run time.",
            ["rule_id"],
            registry=r,
        )
        self.feedback = Counter(
            "kairos_feedback_total",
            "Channel feedback received, by channel and status; result: applied to a contact, "
            "a re-send (duplicate), about no contact this worker knows (unknown_action), or "
            "naming another channel than its action's (wrong_channel).",
            ["channel", "status", "result"],
            registry=r,
        )
        self.feedback_delay = Histogram(
            "kairos_feedback_delay_seconds",
            "From a contact to the channel's report on it (delivery, engagement, failure).",
            ["channel", "status"],
            buckets=FEEDBACK_BUCKETS,
            registry=r,
        )
        self.feature_errors = Counter(
            "kairos_feature_errors_total",
            "Feature updates that raised at run time (the feature kept its previous value).",
            ["feature"],
            registry=r,
        )
        self.actions = Counter(
            "kairos_actions_total",
            "Actions emitted to channel topics.",
            ["channel", "rule_id"],
            registry=r,
        )
        self.suppressions = Counter(
            "kairos_suppressions_total",
            "Fired rules that produced no contact, by reason.",
            ["reason", "rule_id"],
            registry=r,
        )
        self.decision_latency = BulkHistogram(
            "kairos_decision_latency_seconds",
            "Time from an event (occurred_at, or broker ingest) to its action being produced.",
            ["since"],
            LATENCY_BUCKETS,
            r,
        )
        self.action_lateness = BulkHistogram(
            "kairos_action_lateness_seconds",
            "From when an action was due to its being produced, by channel and path: direct "
            "(due at its event), timer (a wait, wave or window; due when it fires), deferred "
            "(quiet hours, an RM's next working day; due when the deferral ends) and rm_queue "
            "(through the RM capacity queue; due when it was before it queued).",
            ["channel", "path"],
            LATENESS_BUCKETS,
            r,
        )
        self.ruleset = Info("kairos_ruleset", "The ruleset version in force.", registry=r)
        self.ruleset_swaps = Counter(
            "kairos_ruleset_swaps_total",
            "Deployed rulesets swapped into the running worker without a restart.",
            registry=r,
        )
        self.ruleset_rejected = Counter(
            "kairos_ruleset_rejected_total",
            "Deployed rulesets refused by the worker (did not compile, or missing); "
            "the running ruleset stayed in force.",
            registry=r,
        )
        self.rules_loaded = Gauge(
            "kairos_rules_loaded", "Enabled rules in the live ruleset.", registry=r
        )
        self.deferrals = Counter(
            "kairos_deferrals_total",
            "Contacts deferred (quiet hours, RM capacity), by reason; each is re-checked when due.",
            ["reason", "rule_id"],
            registry=r,
        )
        self.held_out = Counter(
            "kairos_holdouts_total",
            "Contacts recorded but not sent because the customer is in the rule's holdout.",
            ["rule_id"],
            registry=r,
        )
        self.conversions = Counter(
            "kairos_conversions_total",
            "Goals reached after a decision, by rule and group (treated or holdout).",
            ["rule_id", "group"],
            registry=r,
        )
        self.rm_capacity = Counter(
            "kairos_rm_capacity_total",
            "RM contacts granted within the RM's daily capacity, or refused as full.",
            ["outcome"],
            registry=r,
        )
        self.events_late = Counter(
            "kairos_events_late_total",
            "Events too far behind the customer's newest to update windowed features.",
            ["event_type"],
            registry=r,
        )
        self.timers = Counter(
            "kairos_timers_total",
            "Absence timers scheduled, cancelled by the customer, fired or dropped.",
            ["rule_id", "change"],
            registry=r,
        )
        self.timers_pending = Gauge(
            "kairos_timers_pending",
            "Timers pending on this worker's partitions, by kind: absence waits, deferred "
            "contacts (quiet hours, RM capacity) and decision windows.",
            ["kind"],
            registry=r,
        )
        self.state_cached = Gauge(
            "kairos_state_cached_keys",
            "Keys (customers, RM counters) whose decoded state this worker holds in memory, "
            "by table (bounded by KAIROS_STATE_CACHE_CUSTOMERS each).",
            ["table"],
            registry=r,
        )
        self.state_reads = Counter(
            "kairos_state_reads_total",
            "State reads by table: 'cached' from memory, 'stored' decoded from RocksDB.",
            ["table", "source"],
            registry=r,
        )
        self.checkpoints = Histogram(
            "kairos_checkpoint_seconds",
            "From a batch's outputs and state sent to their acknowledgement and storage.",
            buckets=CHECKPOINT_BUCKETS,
            registry=r,
        )
        self.gc_full = Histogram(
            "kairos_gc_full_seconds",
            "Full garbage collections (every KAIROS_GC_FULL_INTERVAL_S), each a pause of the "
            "worker that walks every live object.",
            buckets=GC_FULL_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "kairos_worker_ready",
            "1 when partitions are assigned and state is recovered.",
            registry=r,
        )
        # Per message, a series is found by its labels once: ``labels()`` costs about as much
        # as a rule's evaluation.
        self.consumed_of = functools.cache(self.events_consumed.labels)
        for table in ("customer_state", "rm_capacity"):
            self.state_cached.labels(table)
            for source in ("cached", "stored"):
                self.state_reads.labels(table, source)
        for kind in TIMER_KINDS:  # present at 0 from the start, so alerts and panels see them
            self.timers_pending.labels(kind).set(0)
        for outcome in ("granted", "full"):
            self.rm_capacity.labels(outcome)
        for channel in Channel:  # every path present from the start: 12 bounded series
            for path in ACTION_PATHS:
                self.action_lateness.declare(channel.value, path)
        for event_type in EVENT_TYPES:  # a worker that saw no late or repeated event reads 0
            self.events_late.labels(event_type)
            self.events_duplicate.labels(event_type)

    def declare_rule(
        self, rule_id: str, channels: Iterable[str], holdout: bool, goal: bool
    ) -> None:
        """Create a live rule's series at 0, so a quiet rule reads 0 rather than "no data".

        Prometheus cannot tell a rule that never fired from a rule that is not deployed, and
        ``rate()`` over a series that appears mid-window misses its first increment.
        """
        self.rule_evaluations.declare(rule_id)
        self.rule_fires.labels(rule_id)
        self.rule_errors.labels(rule_id)
        for channel in channels:
            self.actions.labels(channel, rule_id)
        for reason in DEFERRAL_REASONS:
            self.deferrals.labels(reason, rule_id)
        if holdout:
            self.held_out.labels(rule_id)
        if goal:
            for group in ("treated", "holdout"):
                self.conversions.labels(rule_id, group)

    def set_timers_pending(self, by_kind: Mapping[str, int]) -> None:
        """Publish the pending timers; kinds with none left drop to 0 rather than vanish."""
        for kind in TIMER_KINDS:
            self.timers_pending.labels(kind).set(by_kind.get(kind, 0))
