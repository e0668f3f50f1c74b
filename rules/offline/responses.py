"""How customers answer contacts, simulated: the channel reports a backtest cannot have recorded.

Feedback answers actions, so a backtest of new rules meets contacts nobody ever made, and
a generated month has no channel reports at all. This model stands in for the SMS
gateway, the push service and the RM desk: for each contact it tells the story the channel
would report (delivered in seconds, opened in minutes to hours or never, a bounce, an
unsubscribe; for an RM task, the call's outcome within the working day). The demo's
simulated channel systems tell the same stories over Kafka.

* **Seeded per action**: the story of a contact depends only on the seed and its
  ``action_id``, so a ruleset compared with another meets the same response wherever both
  make the same contact (common random numbers: the difference is the rules', not luck's),
  and a rerun gives the same report.
* **Rates by channel, tier and hour**: engagement is scaled by the customer's tier and is
  lower for contacts made outside the customer's waking hours.
* **Configurable or estimated**: rates come from a file (``--response-rates``), or are
  estimated from recorded feedback (:func:`estimate`), or are these defaults.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.actions import Action, Channel
from schemas.feedback import ENGAGED, STATUS_RANK, Feedback, FeedbackStatus

_MINUTE, _HOUR = 60.0, 3600.0

#: A share of contacts, from 0 to 1.
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class _Rates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MessageRates(_Rates):
    """Push or SMS: what share bounces, is engaged with, dismissed or unsubscribed from."""

    hard_bounce: Rate
    soft_bounce: Rate
    engaged: Rate = Field(description="Opened (push) or clicked (SMS).")
    clicked_after_open: Rate = Field(default=0.0, description="Push only.")
    dismissed: Rate = Field(default=0.0, description="Of the contacts not engaged with.")
    unsubscribed: Rate = Field(default=0.0, description="Of the contacts not engaged with.")
    engage_within_hours: float = Field(default=8.0, gt=0, le=24 * 30)


class RmRates(_Rates):
    """An RM task: the share of calls that reach the customer, and of those, interested."""

    reached: Rate
    interested: Rate
    declined: Rate = 0.1
    call_within_hours: float = Field(default=6.0, gt=0, le=24 * 30)


class ResponseRates(_Rates):
    """Every channel's rates, and how tier and hour scale engagement."""

    push: MessageRates = MessageRates(
        hard_bounce=0.03,
        soft_bounce=0.01,
        engaged=0.30,
        clicked_after_open=0.4,
        dismissed=0.2,
        unsubscribed=0.0,
    )
    sms: MessageRates = MessageRates(
        hard_bounce=0.01, soft_bounce=0.01, engaged=0.15, unsubscribed=0.01
    )
    rm: RmRates = RmRates(reached=0.6, interested=0.35)
    tier_engagement: dict[str, Annotated[float, Field(ge=0, le=10)]] = Field(
        default={"mass": 1.0, "affluent": 1.2, "private": 1.4},
        description="Multiplies engagement by the customer's tier (others: 1).",
    )
    night_engagement: Rate = Field(
        default=0.5, description="Multiplies engagement for contacts made 22:00-07:00."
    )
    source: str = Field(default="defaults", description="Where these rates came from.")


#: A planned report: (status, seconds after the contact, failure kind).
Beat = tuple[FeedbackStatus, float, Literal["hard", "soft"] | None]


class ResponseModel:
    """Tells the story of each contact; see the module docstring."""

    def __init__(self, rates: ResponseRates | None = None, seed: int = 7) -> None:
        self.rates = rates or ResponseRates()
        self.seed = seed

    def _rng(self, action_id: str) -> random.Random:
        digest = hashlib.blake2b(f"{self.seed}:{action_id}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def beats(self, channel: Channel, action_id: str, tier: str | None, hour: int) -> list[Beat]:
        """What the channel reports about one contact made at the customer's local ``hour``."""
        rng = self._rng(action_id)
        scale = self.rates.tier_engagement.get(tier or "", 1.0)
        if hour >= 22 or hour < 7:
            scale *= self.rates.night_engagement
        if channel is Channel.RM:
            rm = self.rates.rm
            call = rng.uniform(0.5 * _HOUR, rm.call_within_hours * _HOUR)
            if rng.random() >= rm.reached:
                return [(FeedbackStatus.NOT_REACHED, call, None)]
            draw = rng.random()
            if draw < min(rm.interested * scale, 1.0):
                return [(FeedbackStatus.INTERESTED, call, None)]
            if draw < min(rm.interested * scale, 1.0) + rm.declined:
                return [(FeedbackStatus.DECLINED, call, None)]
            return [(FeedbackStatus.REACHED, call, None)]
        rates = self.rates.push if channel is Channel.PUSH else self.rates.sms
        draw = rng.random()
        if draw < rates.hard_bounce:
            return [(FeedbackStatus.FAILED, rng.uniform(2, 30), "hard")]
        if draw < rates.hard_bounce + rates.soft_bounce:
            return [(FeedbackStatus.FAILED, rng.uniform(30, 15 * _MINUTE), "soft")]
        beats: list[Beat] = [(FeedbackStatus.DELIVERED, rng.uniform(2, 30), None)]
        if rng.random() < min(rates.engaged * scale, 1.0):
            opened = rng.uniform(5 * _MINUTE, rates.engage_within_hours * _HOUR)
            if channel is Channel.PUSH:
                beats.append((FeedbackStatus.OPENED, opened, None))
                if rng.random() < rates.clicked_after_open:
                    beats.append((FeedbackStatus.CLICKED, opened + rng.uniform(5, 300), None))
            else:
                beats.append((FeedbackStatus.CLICKED, opened, None))
        elif rng.random() < rates.unsubscribed:
            beats.append((FeedbackStatus.UNSUBSCRIBED, rng.uniform(_MINUTE, 2 * _HOUR), None))
        elif rng.random() < rates.dismissed:
            beats.append((FeedbackStatus.DISMISSED, rng.uniform(_MINUTE, 4 * _HOUR), None))
        return beats

    def answer(self, action: Action, tier: str | None, hour: int) -> list[Feedback]:
        """The channel's reports on ``action``, as the channel system would send them."""
        return [
            Feedback(
                feedback_id=f"sim-{action.action_id}-{status.value}",
                action_id=action.action_id,
                customer_id=action.customer_id,
                channel=action.channel,
                status=status,
                occurred_at=action.created_at + timedelta(seconds=after),
                failure=failure,
            )
            for status, after, failure in self.beats(action.channel, action.action_id, tier, hour)
        ]


def estimate(feedback: Iterable[Feedback], base: ResponseRates | None = None) -> ResponseRates:
    """Rates estimated from recorded channel reports; ``base``'s where a channel has none.

    Each reported action counts once, by its furthest status. Tier and hour factors, and
    the delays, stay ``base``'s: recorded reports do not say who the customer was.
    """
    base = base or ResponseRates()
    furthest: dict[str, Feedback] = {}
    failures: dict[str, str | None] = {}
    for report in feedback:
        known = furthest.get(report.action_id)
        if known is None or STATUS_RANK[report.status] > STATUS_RANK[known.status]:
            furthest[report.action_id] = report
        if report.status is FeedbackStatus.FAILED:
            failures[report.action_id] = report.failure
    by_channel: dict[Channel, Counter[str]] = {}
    for action_id, report in furthest.items():
        counts = by_channel.setdefault(report.channel, Counter())
        counts["actions"] += 1
        status = report.status
        if status is FeedbackStatus.FAILED:
            counts[f"{failures.get(action_id) or 'soft'}_bounce"] += 1
        elif status in ENGAGED:
            counts["engaged"] += 1
        counts[status.value] += 1
    rates = base.model_copy(update={"source": f"estimated from {len(furthest):,} recorded actions"})
    for channel, counts in by_channel.items():
        n = counts["actions"]
        if channel is Channel.RM:
            reached = n - counts["not_reached"]
            rm = RmRates(
                reached=reached / n,
                interested=counts["interested"] / max(reached, 1),
                declined=counts["declined"] / max(reached, 1),
                call_within_hours=base.rm.call_within_hours,
            )
            rates = rates.model_copy(update={"rm": rm})
            continue
        delivered = n - counts["hard_bounce"] - counts["soft_bounce"]
        not_engaged = max(delivered - counts["engaged"], 1)
        old = base.push if channel is Channel.PUSH else base.sms
        message = MessageRates(
            hard_bounce=counts["hard_bounce"] / n,
            soft_bounce=counts["soft_bounce"] / n,
            engaged=counts["engaged"] / max(delivered, 1),
            clicked_after_open=(
                counts["clicked"] / max(counts["engaged"], 1) if channel is Channel.PUSH else 0.0
            ),
            dismissed=counts["dismissed"] / not_engaged,
            unsubscribed=counts["unsubscribed"] / not_engaged,
            engage_within_hours=old.engage_within_hours,
        )
        rates = rates.model_copy(update={channel.value: message})
    return rates
