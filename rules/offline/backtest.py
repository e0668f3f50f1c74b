"""What a ruleset would have done to recorded traffic: the live engine, offline, summed up.

Marketing ops ask "how many customers will this reach, on which channels, at what hours,
and how much will the contact policy hold back?" before a campaign goes live. The answer
must come from the engine the worker runs, not from a model of it, so a backtest feeds
events through :class:`rules.offline.replay.Replay` (the worker's ``decide`` over an in-memory
store, event time as the clock) and only *counts* here. Counts are kept as running totals:
a month of traffic is millions of events, but a summary is a few hundred numbers.

Contacts are dated and hourly-binned in the customer's own time zone (from their
profile), because that is the clock quiet hours and daily caps are written in, and the
clock a customer judges "23:00" by.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from rules.engine import EngineOptions, Verdict
from rules.offline.replay import Replay
from rules.offline.report import CampaignReport, RuleReport, build_report, campaign_reports
from rules.offline.responses import ResponseModel
from rules.ruleset import Ruleset
from schemas.actions import Action
from schemas.conversions import Conversion
from schemas.decisions import Decision
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.profile import CustomerProfile

_UTC = ZoneInfo("UTC")


class ChannelSummary(BaseModel):
    """One rule's contacts on one channel."""

    model_config = ConfigDict(frozen=True)

    channel: str
    sends: int
    customers_reached: int
    per_day: dict[str, int] = Field(description="Contacts per local calendar day (ISO date).")
    per_hour: list[int] = Field(description="Contacts per local hour of day, 0 to 23.")
    peak_hour: int | None = Field(description="Local hour with the most contacts.")


class RuleSummary(BaseModel):
    """Everything one rule did during the backtest."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    rule_version: int | None
    fires: int = Field(description="Decisions with a final outcome (sent, held out, suppressed).")
    sends: int
    held_out: int
    deferred: int = Field(description="Times a contact was postponed (quiet hours, RM capacity).")
    suppressed: int
    suppressed_by_reason: dict[str, int]
    customers_reached: int
    peak_hour: int | None = Field(description="Local hour with the most contacts, any channel.")
    channels: list[ChannelSummary]
    campaign: str | None = Field(default=None, description="Its multi-wave campaign, if any.")
    wave: int | None = Field(default=None, description="Its wave in that campaign.")
    delivered: int = Field(default=0, description="Sends the channel delivered (or engaged).")
    engaged: int = Field(default=0, description="Sends opened, clicked, replied; calls reached.")
    failed: int = Field(default=0, description="Sends the channel reported failed.")
    delivered_rate: float | None = None
    engaged_rate: float | None = None
    converted_rate: float | None = Field(default=None, description="Treated conversions per send.")
    treated_conversions: int
    holdout_conversions: int
    uplift: float | None
    uplift_ci95: tuple[float, float] | None


class InputSummary(BaseModel):
    """What went in, and what the engine could not use."""

    model_config = ConfigDict(frozen=True)

    events: int = 0
    profiles: int = 0
    feedback: int = Field(default=0, description="Recorded channel reports replayed.")
    customers: int = 0
    duplicates: int = Field(default=0, description="Re-deliveries the engine recognised.")
    late: int = Field(default=0, description="Events too late to count in feature windows.")
    rejected: dict[str, int] = Field(
        default_factory=dict, description="Lines the live worker would dead-letter, by reason."
    )
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    utc_offsets_h: tuple[float, float] | None = Field(
        default=None,
        description="The contacted customers' UTC offsets in hours, lowest and highest: "
        "which local dates the events cover whole.",
    )


class BacktestReport(BaseModel):
    """The result of one backtest: per rule, per channel, per day, and the totals."""

    model_config = ConfigDict(frozen=True)

    ruleset_version: str
    inputs: InputSummary
    rules: list[RuleSummary]
    contacts_per_day: dict[str, dict[str, int]] = Field(
        description="Local date -> channel -> contacts, every rule together."
    )
    contacts_by_channel: dict[str, int]
    customers_reached: int
    pending_at_end: dict[str, int] = Field(
        description="Timers still waiting when the events ran out, by kind (not yet sent)."
    )
    campaigns: list[CampaignReport] = Field(
        default=[], description="Multi-wave campaigns: the waves' funnel, the uplift whole."
    )
    responses: str = Field(
        default="recorded only",
        description="Where the channel reports came from: recorded, and/or simulated (how).",
    )


_InputT = TypeVar("_InputT", CustomerProfile, Event, Feedback)


class Backtest:
    """Feed profiles and events in arrival order; :meth:`report` sums up what happened."""

    def __init__(
        self,
        ruleset: Ruleset,
        options: EngineOptions | None = None,
        responses: ResponseModel | None = None,
        answered: frozenset[str] = frozenset(),
    ) -> None:
        """A backtest of ``ruleset``; ``responses`` answers the contacts it makes.

        Except the actions in ``answered``: recorded feedback in the inputs answers them, and
        is replayed as it happened.
        """
        self.ruleset = ruleset
        self.replay = Replay(ruleset, options)
        self.responses = responses
        self.answered = answered
        self.decisions: list[Decision] = []
        self.conversions: list[Conversion] = []
        self.feedback_seen: list[Feedback] = []
        #: Simulated reports not yet due, by when they happen (and in the order planned).
        self._simulated: list[tuple[datetime, int, Feedback]] = []
        self._planned = 0
        self.actions: list[Action] = []
        self._reached: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._per_day: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        #: Contacts by (rule, channel) and local hour: also the send counts, summed.
        self._per_hour: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 24)
        self._zones: dict[str, ZoneInfo] = {}
        self._inputs: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._first: datetime | None = None
        self._last: datetime | None = None
        #: Keep every action (for the live/backtest agreement check); off for big runs.
        self.keep_actions = False

    def profile(self, profile: CustomerProfile) -> None:
        self._inputs["profiles"] += 1
        for verdict in self._replayed(self.replay.profile, profile):
            self._count(verdict)

    def event(self, event: Event) -> None:
        self._answer_until(event.occurred_at)
        self._inputs["events"] += 1
        if self._first is None or event.occurred_at < self._first:
            self._first = event.occurred_at
        if self._last is None or event.occurred_at > self._last:
            self._last = event.occurred_at
        for verdict in self._replayed(self.replay.event, event):
            self._inputs["duplicates"] += verdict.duplicate
            self._inputs["late"] += verdict.late
            self._count(verdict)

    def feedback(self, feedback: Feedback) -> None:
        """A channel's report, as recorded: it may end or send a campaign's waves."""
        self._answer_until(feedback.occurred_at)
        self._inputs["feedback"] += 1
        self.feedback_seen.append(feedback)
        for verdict in self._replayed(self.replay.feedback, feedback):
            self._count(verdict)

    def _answer_until(self, until: datetime) -> None:
        """Replay the simulated reports due by ``until`` (they may send or end waves)."""
        due = self._simulated
        while due and due[0][0] <= until:
            report = heapq.heappop(due)[2]
            self._inputs["simulated_feedback"] += 1
            self.feedback_seen.append(report)
            for verdict in self._replayed(self.replay.feedback, report):
                self._count(verdict)

    def _plan_answers(self, action: Action, hour: int) -> None:
        if self.responses is None or action.action_id in self.answered:
            return
        state = self.replay.states.get(action.customer_id)
        tier = state.profile.tier if state is not None and state.profile else None
        for report in self.responses.answer(action, tier, hour):
            self._planned += 1
            heapq.heappush(self._simulated, (report.occurred_at, self._planned, report))

    def _replayed(self, replay: Callable[[_InputT], list[Verdict]], item: _InputT) -> list[Verdict]:
        """The replay's verdicts on ``item``; none if deciding raised.

        Such an input is counted as the worker would dead-letter it (``processing_failed``),
        and the backtest goes on.
        """
        try:
            return replay(item)
        except Exception:
            self.reject("processing_failed")
            return []

    def reject(self, error_type: str) -> None:
        """A line the live worker would send to the dead-letter topic."""
        self._rejected[error_type] += 1

    def _count(self, verdict: Verdict) -> None:
        self.decisions.extend(verdict.decisions)
        self.conversions.extend(verdict.conversions)
        for action in verdict.actions:
            key = (action.rule_id, action.channel.value)
            self._reached[key].add(action.customer_id)
            local = action.created_at.astimezone(self._zone(action.customer_id))
            self._per_day[key][local.date().isoformat()] += 1
            self._per_hour[key][local.hour] += 1
            self._plan_answers(action, local.hour)
            if self.keep_actions:
                self.actions.append(action)

    def _zone(self, customer_id: str) -> ZoneInfo:
        """The customer's time zone now (profiles may move it), else UTC."""
        state = self.replay.states.get(customer_id)
        name = state.profile.timezone if state is not None and state.profile else "UTC"
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = ZoneInfo(name)
        return zone

    def reached(self, rule_id: str | None = None) -> set[str]:
        """Customers contacted at least once (by ``rule_id``, or by any rule)."""
        return set().union(
            *(
                customers
                for (rule, _), customers in self._reached.items()
                if rule_id in (None, rule)
            )
        )

    def report(self) -> BacktestReport:
        reports = build_report(self.decisions, self.conversions, self.feedback_seen)
        by_rule = {r.rule_id: r for r in reports}
        versions = {rule.id: rule.spec.version for rule in self.ruleset.rules}
        rule_ids = sorted({*by_rule, *(rule_id for rule_id, _ in self._per_hour)})
        summaries = [
            self._rule_summary(rule_id, by_rule.get(rule_id), versions) for rule_id in rule_ids
        ]
        per_day: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for (_, channel), days in self._per_day.items():
            for day, count in days.items():
                per_day[day][channel] += count
        by_channel: Counter[str] = Counter()
        for (_, channel), hours in self._per_hour.items():
            by_channel[channel] += sum(hours)
        pending: Counter[str] = Counter(
            timer.kind for state in self.replay.states.values() for timer in state.timers
        )
        return BacktestReport(
            ruleset_version=self.ruleset.version,
            inputs=InputSummary(
                events=self._inputs["events"],
                profiles=self._inputs["profiles"],
                feedback=self._inputs["feedback"],
                customers=len(self.replay.states),
                duplicates=self._inputs["duplicates"],
                late=self._inputs["late"],
                rejected=dict(sorted(self._rejected.items())),
                first_event_at=self._first,
                last_event_at=self._last,
                utc_offsets_h=self._utc_offsets(),
            ),
            rules=summaries,
            contacts_per_day={day: dict(sorted(per_day[day].items())) for day in sorted(per_day)},
            contacts_by_channel=dict(sorted(by_channel.items())),
            customers_reached=len(self.reached()),
            pending_at_end=dict(sorted(pending.items())),
            campaigns=campaign_reports(reports),
            responses=self._responses_text(),
        )

    def _utc_offsets(self) -> tuple[float, float] | None:
        """Lowest and highest UTC offset (hours) of the zones contacts were counted in."""
        if self._first is None or not self._zones:
            return None
        offsets = [
            (zone.utcoffset(self._first.replace(tzinfo=None)) or timedelta()).total_seconds() / 3600
            for zone in self._zones.values()
        ]
        return min(offsets), max(offsets)

    def _responses_text(self) -> str:
        recorded = self._inputs["feedback"]
        simulated = self._inputs["simulated_feedback"]
        parts = [f"{recorded:,} recorded reports replayed"]
        if self.responses is not None:
            parts.append(
                f"{simulated:,} simulated (seed {self.responses.seed}, rates: "
                f"{self.responses.rates.source}; {len(self._simulated):,} due after the last "
                "event not replayed)"
            )
        return "; ".join(parts)

    def _rule_summary(
        self, rule_id: str, outcome: RuleReport | None, versions: dict[str, int]
    ) -> RuleSummary:
        outcome = outcome or RuleReport(rule_id)
        channels = [
            ChannelSummary(
                channel=channel,
                sends=sum(self._per_hour[(rule_id, channel)]),
                customers_reached=len(self._reached[(rule_id, channel)]),
                per_day=dict(sorted(self._per_day[(rule_id, channel)].items())),
                per_hour=self._per_hour[(rule_id, channel)],
                peak_hour=peak_hour(self._per_hour[(rule_id, channel)]),
            )
            for channel in sorted(c for r, c in list(self._per_hour) if r == rule_id)
        ]
        return RuleSummary(
            rule_id=rule_id,
            rule_version=versions.get(rule_id),
            fires=outcome.fired,
            sends=sum(c.sends for c in channels),
            held_out=outcome.held_out,
            deferred=outcome.deferred,
            suppressed=sum(outcome.suppressed_by_reason.values()),
            suppressed_by_reason=outcome.suppressed_by_reason,
            customers_reached=len(self.reached(rule_id)),
            peak_hour=peak_hour([sum(c.per_hour[h] for c in channels) for h in range(24)]),
            channels=channels,
            campaign=outcome.campaign,
            wave=outcome.wave,
            delivered=outcome.delivered,
            engaged=outcome.engaged,
            failed=outcome.failed,
            delivered_rate=outcome.delivered_rate,
            engaged_rate=outcome.engaged_rate,
            converted_rate=outcome.treated_rate,
            treated_conversions=outcome.treated_conversions,
            holdout_conversions=outcome.holdout_conversions,
            uplift=outcome.uplift,
            uplift_ci95=outcome.uplift_ci95,
        )


def peak_hour(per_hour: list[int]) -> int | None:
    """The hour with the most contacts (the earliest of equals); None without contacts."""
    if not any(per_hour):
        return None
    return max(range(24), key=lambda hour: per_hour[hour])
