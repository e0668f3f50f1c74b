"""Per-rule outcomes, the funnel and measured uplift: did the contact cause the result.

Built from the audit trail (decisions), the channels' feedback and the conversions, so the
live topics, a backtest and a test all report the same way. The funnel follows each sent
action: sent → delivered → engaged (opened, clicked, replied; an RM call that reached the
customer) → converted, with each step's rate of the contacts sent.

Uplift is the conversion rate of treated customers minus that of held-out customers, with
a 95 % confidence interval by Newcombe's method (hybrid Wilson score), which stays honest
for the small groups a holdout of 10 % gives — where the textbook Wald interval is too
narrow and can leave [-1, 1].

Numbers only: turning them into a table or JSON is the command line's job.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas.conversions import Conversion
from schemas.decisions import Decision, Outcome
from schemas.feedback import ENGAGED, STATUS_RANK, Feedback, FeedbackStatus

Z_95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def uplift_interval(
    treated: int, treated_n: int, control: int, control_n: int
) -> tuple[float, float, float] | None:
    """(difference, low, high) of treated minus control rates; ``None`` if a group is empty."""
    if treated_n == 0 or control_n == 0:
        return None
    p1, p2 = treated / treated_n, control / control_n
    l1, u1 = wilson(treated, treated_n)
    l2, u2 = wilson(control, control_n)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


@dataclass
class RuleReport:
    """What one rule did, and what it caused."""

    rule_id: str
    #: For a rule in a multi-wave campaign: the campaign (its first rule) and the wave.
    campaign: str | None = None
    wave: int | None = None
    fired: int = 0
    sent: int = 0
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    held_out: int = 0
    #: The funnel of sent actions, from the channels' feedback (an open implies delivery).
    delivered: int = 0
    engaged: int = 0
    failed: int = 0
    delivered_rate: float | None = None
    engaged_rate: float | None = None
    treated_conversions: int = 0
    holdout_conversions: int = 0
    treated_rate: float | None = None
    holdout_rate: float | None = None
    uplift: float | None = None
    uplift_ci95: tuple[float, float] | None = None


def _furthest_status(feedback: Iterable[Feedback]) -> dict[str, str]:
    """Each action's furthest reported status (re-sent and late reports change nothing)."""
    furthest: dict[str, str] = {}
    for report in feedback:
        known = furthest.get(report.action_id)
        if known is None or STATUS_RANK[report.status] > STATUS_RANK[known]:
            furthest[report.action_id] = report.status
    return furthest


def build_report(
    decisions: Iterable[Decision],
    conversions: Iterable[Conversion],
    feedback: Iterable[Feedback] = (),
) -> list[RuleReport]:
    """Aggregate per rule; duplicates (same decision, conversion or feedback id) count once."""
    unique_decisions = {d.decision_id: d for d in decisions}
    statuses = _furthest_status({f.feedback_id: f for f in feedback}.values())
    converted = {(c.rule_id, c.group, c.decision_id) for c in conversions}
    reports: dict[str, RuleReport] = {}
    channels: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for decision in unique_decisions.values():
        report = reports.setdefault(decision.rule_id, RuleReport(decision.rule_id))
        if decision.campaign is not None:
            report.campaign, report.wave = decision.campaign, decision.wave
        if decision.outcome is Outcome.DEFERRED:
            report.deferred += 1  # an interim step: its final outcome is recorded later
            continue
        report.fired += 1
        if decision.outcome is Outcome.SENT:
            report.sent += 1
            channels.setdefault(decision.rule_id, Counter())[str(decision.channel)] += 1
            status = statuses.get(decision.action_id or "")
            if status == FeedbackStatus.FAILED:
                report.failed += 1
            elif status is not None and status != FeedbackStatus.UNSUBSCRIBED:
                report.delivered += 1  # any report past "sent" but a failure means it arrived
                report.engaged += status in ENGAGED
        elif decision.outcome is Outcome.HELD_OUT:
            report.held_out += 1
        else:
            reasons.setdefault(decision.rule_id, Counter())[decision.reason_code.value] += 1
    for rule_id, group, _ in converted:
        report = reports.setdefault(rule_id, RuleReport(rule_id))
        if group == "treated":
            report.treated_conversions += 1
        else:
            report.holdout_conversions += 1
    for report in reports.values():
        report.sent_by_channel = dict(sorted(channels.get(report.rule_id, Counter()).items()))
        report.suppressed_by_reason = dict(sorted(reasons.get(report.rule_id, Counter()).items()))
        measure(report)
    return sorted(reports.values(), key=lambda r: r.rule_id)


def measure(report: RuleReport) -> RuleReport:
    """Fill ``report``'s rates and uplift from its counts; returns it.

    Apart from the counting, so that whatever counts the same things another way (the
    console's store counts them in SQL) derives its rates and interval exactly as here.
    """
    if report.sent:
        report.treated_rate = report.treated_conversions / report.sent
        report.delivered_rate = report.delivered / report.sent
        report.engaged_rate = report.engaged / report.sent
    if report.held_out:
        report.holdout_rate = report.holdout_conversions / report.held_out
    interval = uplift_interval(
        report.treated_conversions, report.sent, report.holdout_conversions, report.held_out
    )
    if interval is not None:
        report.uplift, low, high = interval
        report.uplift_ci95 = (low, high)
    return report


class CampaignReport(BaseModel):
    """A multi-wave campaign as one: its waves' funnel summed, its uplift measured whole.

    The holdout is drawn once, at the first wave, and a held-out customer stays out of every
    wave; so the first wave's treated and held-out groups, with the conversions of their
    goal (which stays open across the waves), measure what the campaign as a whole caused.
    """

    campaign: str
    waves: list[str]
    sent: int = 0
    delivered: int = 0
    engaged: int = 0
    failed: int = 0
    #: Customers the campaign was decided for (sent or held out at the first wave).
    entered: int = 0
    held_out: int = 0
    treated_conversions: int = 0
    holdout_conversions: int = 0
    treated_rate: float | None = None
    holdout_rate: float | None = None
    uplift: float | None = None
    uplift_ci95: tuple[float, float] | None = None


def campaign_reports(reports: Iterable[RuleReport]) -> list[CampaignReport]:
    """One report per multi-wave campaign, from its waves' rule reports."""
    by_campaign: dict[str, list[RuleReport]] = {}
    for report in reports:
        if report.campaign is not None:
            by_campaign.setdefault(report.campaign, []).append(report)
    campaigns = []
    for name, waves in sorted(by_campaign.items()):
        waves.sort(key=lambda r: r.wave or 0)
        first = waves[0]
        campaign = CampaignReport(
            campaign=name,
            waves=[w.rule_id for w in waves],
            sent=sum(w.sent for w in waves),
            delivered=sum(w.delivered for w in waves),
            engaged=sum(w.engaged for w in waves),
            failed=sum(w.failed for w in waves),
            entered=first.sent + first.held_out if first.wave == 1 else 0,
            held_out=first.held_out if first.wave == 1 else 0,
        )
        if first.wave == 1:  # without its first wave in the data, no groups to compare
            campaign.treated_conversions = first.treated_conversions
            campaign.holdout_conversions = first.holdout_conversions
            campaign.treated_rate, campaign.holdout_rate = first.treated_rate, first.holdout_rate
            campaign.uplift, campaign.uplift_ci95 = first.uplift, first.uplift_ci95
        campaigns.append(campaign)
    return campaigns
