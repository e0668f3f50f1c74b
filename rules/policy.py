"""Contact policy: frequency caps and quiet hours, in the customer's own time zone.

"Not annoyed" is measured in the customer's day, not the server's: one SMS a *day* means
their calendar day, and 21:00 means 21:00 where they are, across DST changes. Policy is
declared once (a ``policy:`` section in the rule files, deployed and versioned with the
rules) and a rule may choose what happens to its contacts in quiet hours.

Pure arithmetic on datetimes and the contact history kept in the state, so it is
unit-tested with any clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rules.language.durations import DURATION_PATTERN, Duration, PositiveDuration, parse_duration
from rules.working_days import calendar, next_working_day
from schemas.actions import Channel
from schemas.feedback import ENGAGED
from schemas.state import ContactRecord

#: Contacts kept in the state for caps: enough for any sane cap, bounded whatever happens.
CONTACT_HISTORY = 32

#: How long a contact may go without engagement before it counts as ignored, by channel:
#: a push is read within hours or never, an RM desk works its tasks over days.
DEFAULT_IGNORED_AFTER: Mapping[Channel, timedelta] = {
    Channel.PUSH: timedelta(days=3),
    Channel.SMS: timedelta(days=3),
    Channel.RM: timedelta(days=7),
}

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _period(value: object) -> object:
    if isinstance(value, str) and value not in ("day", "week"):
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(
                f"bad period {value!r}: day or week (the customer's calendar), "
                "or a rolling duration such as 24h or 7d"
            ) from None
    return value


Period = Annotated[
    Literal["day", "week"] | timedelta,
    BeforeValidator(_period),
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": ["day", "week"]},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "day / week: the customer's calendar day or week; 24h, 7d: rolling",
        }
    ),
]


def _clock_time(value: object) -> object:
    if isinstance(value, str):
        if not _CLOCK.match(value):
            raise ValueError(f"bad time of day {value!r}: write HH:MM on a 24-hour clock")
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    return value


ClockTime = Annotated[
    time,
    BeforeValidator(_clock_time),
    WithJsonSchema({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapSpec(_Strict):
    """At most ``max`` marketing contacts on ``channel`` (or ``any`` channel) per period."""

    channel: Channel | Literal["any"]
    max: int = Field(ge=0)
    per: Period


class QuietHoursSpec(_Strict):
    """No contact on these channels between ``start`` and ``end``, customer-local time."""

    channels: Annotated[list[Channel], Field(min_length=1)]
    start: ClockTime
    end: ClockTime
    action: Literal["defer", "drop"] = Field(
        default="defer", description="Default for rules: send at the next allowed time, or drop."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursSpec:
        if self.start == self.end:
            raise ValueError("start and end are equal: the quiet period would be empty")
        return self


class HolidayCalendarSpec(_Strict):
    """The public holidays the RMs do not work, as the ``holidays`` library knows them."""

    country: str = Field(
        description="ISO 3166-1 alpha-2 code of the RMs' country (GB, ES, ...); its public "
        "holidays and its weekend, as the holidays library defines them."
    )
    subdivision: str | None = Field(
        default=None,
        description="Where holidays differ by region: the subdivision's code (ENG for "
        "England, MD for Madrid, ...); none: the country's nationwide holidays only.",
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        calendar(country)  # raises HolidayCalendarError (a ValueError) with what exists
        return country

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")  # absent when the country itself was refused
        if subdivision is not None and country is not None:
            calendar(country, subdivision)
        return subdivision


class RmCapacitySpec(_Strict):
    """A relationship manager (or branch) takes at most ``daily_limit`` contacts a day."""

    per: Literal["rm", "branch"] = "rm"
    daily_limit: int = Field(ge=0)
    when_full: Literal["next_channel", "next_day"] = Field(
        default="next_channel",
        description="Default for rules: the next channel in the rule's list, or the next day.",
    )
    timezone: str = Field(default="UTC", description="IANA zone of the RMs' working day.")
    opens_at: ClockTime = Field(default=time(9, 0), description="When a working day starts.")
    holidays: HolidayCalendarSpec | None = Field(
        default=None,
        description="The RMs' public holidays and weekend, which a next_day retry skips; "
        "none named: it skips Saturday and Sunday only.",
    )

    @model_validator(mode="after")
    def _zone(self) -> RmCapacitySpec:
        ZoneInfo(self.timezone)  # raises for an unknown zone, with its name
        return self


class FatigueSpec(_Strict):
    """``after`` contacts in a row that the customer ignored pause the channel for ``pause``.

    "Don't annoy", measured on the customer's own response rather than a fixed cap: a
    contact counts as ignored when the channel reported no engagement (opened, clicked,
    replied; for RM tasks, reached or interested) within ``ignored_after`` of it. One engaged
    contact ends the streak.
    """

    channels: Annotated[list[Channel], Field(min_length=1)]
    after: int = Field(ge=1, le=CONTACT_HISTORY, description="Ignored contacts in a row.")
    pause: Duration = Field(description="How long the channel rests, from the last of them.")
    ignored_after: PositiveDuration | None = Field(
        default=None,
        description="A contact with no engagement reported this long after it is ignored; "
        "by default the policy's ignored_after for the channel.",
    )


class PolicySpec(_Strict):
    """The contact policy of a ruleset."""

    caps: list[CapSpec] = []
    quiet_hours: list[QuietHoursSpec] = []
    fatigue: list[FatigueSpec] = []
    ignored_after: dict[Channel, PositiveDuration] = Field(
        default={},
        description="Per channel: a contact with no engagement reported this long after it "
        "is ignored (its status becomes 'ignored'; contact_outcome features count it). "
        "Channels not named keep their default (push 3d, sms 3d, rm 7d).",
    )
    rm_capacity: RmCapacitySpec | None = None
    decision_window: Duration = Field(
        default=timedelta(0),
        description="Rules firing for a customer within this time compete as one moment; "
        "0s decides each event at once.",
    )


@dataclass(frozen=True)
class Policy:
    """A compiled policy; ``Policy()`` is "no caps, no quiet hours"."""

    caps: tuple[CapSpec, ...] = ()
    quiet_hours: tuple[QuietHoursSpec, ...] = ()
    decision_window: timedelta = timedelta(0)
    rm_capacity: RmCapacitySpec | None = None
    fatigue: tuple[FatigueSpec, ...] = ()
    ignored_after: Mapping[Channel, timedelta] = field(
        default_factory=lambda: dict(DEFAULT_IGNORED_AFTER)
    )

    @classmethod
    def from_spec(cls, spec: PolicySpec) -> Policy:
        return cls(
            tuple(spec.caps),
            tuple(spec.quiet_hours),
            spec.decision_window,
            spec.rm_capacity,
            tuple(spec.fatigue),
            {**DEFAULT_IGNORED_AFTER, **spec.ignored_after},
        )

    @cached_property
    def soonest_ignored(self) -> timedelta:
        """The shortest ``ignored_after`` of any channel: a younger contact is still open."""
        return min(self.ignored_after.values(), default=timedelta(0))

    def as_spec(self) -> PolicySpec:
        """The policy as it would be written in a policy file (for ``/rules``)."""
        return PolicySpec(
            caps=list(self.caps),
            quiet_hours=list(self.quiet_hours),
            rm_capacity=self.rm_capacity,
            decision_window=self.decision_window,
            fatigue=list(self.fatigue),
            ignored_after=dict(self.ignored_after),
        )

    def rm_day(self, now: datetime) -> tuple[str, datetime]:
        """The RMs' current day, and when their next working day opens (UTC).

        Both in the RMs' time zone: the weekend and the holidays skipped are those of the
        calendar the policy names (``rm_capacity.holidays``), else Saturday and Sunday.
        """
        spec = self.rm_capacity
        assert spec is not None
        zone = ZoneInfo(spec.timezone)
        today = now.astimezone(zone).date()
        holidays = spec.holidays
        following = (
            next_working_day(today, holidays.country, holidays.subdivision)
            if holidays is not None
            else next_working_day(today)
        )
        return today.isoformat(), _local_instant(following, spec.opens_at, zone)

    # -- caps ------------------------------------------------------------------------------

    def capped_channels(
        self, history: Iterable[ContactRecord], now: datetime, zone: ZoneInfo
    ) -> dict[Channel, str]:
        """Channels whose cap is reached now, each with why; every channel if an ``any`` cap is.

        The reason leaves the channel out ("2 of 2 per day"): whoever reports it names the
        channel once ("sms: 2 of 2 per day"), and each channel gets only the caps that hold
        it, not every cap reached.
        """
        history = list(history)
        reasons: dict[Channel, list[str]] = {}
        for cap in self.caps:
            used = sum(
                1
                for record in history
                if (cap.channel == "any" or record.channel == cap.channel)
                and _same_period(record.at, now, cap.per, zone)
            )
            if used >= cap.max:
                why = f"{used} of {cap.max} per {_period_label(cap.per)}"
                held = Channel if cap.channel == "any" else (Channel(cap.channel),)
                for channel in held:
                    reasons.setdefault(channel, []).append(
                        f"{why} across channels" if cap.channel == "any" else why
                    )
        return {channel: "; ".join(why) for channel, why in reasons.items()}

    # -- fatigue -----------------------------------------------------------------------------

    def fatigued_channels(
        self, history: Iterable[ContactRecord], now: datetime
    ) -> dict[Channel, str]:
        """Channels resting because the customer ignored their last contacts, and until when."""
        history = list(history)
        resting: dict[Channel, str] = {}
        for rule in self.fatigue:
            for channel in rule.channels:
                after = rule.ignored_after or self.ignored_after[channel]
                streak = _ignored_streak(history, channel, now, after)
                if len(streak) < rule.after:
                    continue
                until = streak[0].at + rule.pause  # from the newest ignored contact
                if now < until:
                    resting[channel] = (
                        f"{channel.value}: last {len(streak)} contacts ignored; resting "
                        f"until {until.isoformat()}"
                    )
        return resting

    # -- quiet hours -------------------------------------------------------------------------

    def quiet_rule(self, channel: Channel) -> QuietHoursSpec | None:
        return next((q for q in self.quiet_hours if channel in q.channels), None)

    def next_allowed(self, channel: Channel, now: datetime, zone: ZoneInfo) -> datetime | None:
        """``None`` if ``channel`` may be used now; else the next instant it may (UTC)."""
        quiet = self.quiet_rule(channel)
        if quiet is None:
            return None
        local = now.astimezone(zone)
        if not _in_window(local.time(), quiet.start, quiet.end):
            return None
        end_day = local.date()
        if quiet.start > quiet.end and local.time() >= quiet.start:
            end_day += timedelta(days=1)  # an overnight window ends tomorrow morning
        return _local_instant(end_day, quiet.end, zone)


def _ignored_streak(
    history: list[ContactRecord], channel: Channel, now: datetime, ignored_after: timedelta
) -> list[ContactRecord]:
    """The channel's contacts ignored in a row, newest first, up to the last engaged one.

    Contacts too recent to call (no engagement yet, but within ``ignored_after``) are
    skipped; a failed contact neither counts nor ends the streak (it never reached them).
    """
    streak: list[ContactRecord] = []
    for contact in reversed(history):
        if contact.channel is not channel or contact.status == "failed":
            continue
        if contact.status in ENGAGED:
            break
        if now - contact.at >= ignored_after:
            streak.append(contact)
    return streak


def _in_window(moment: time, start: time, end: time) -> bool:
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # across midnight


def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first real instant at or after local ``day at`` (a DST gap moves it forward)."""
    naive = datetime.combine(day, at)
    candidate = naive.replace(tzinfo=zone)
    if candidate.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None) != naive:
        # in a spring-forward gap: the wall clock skips this time; use the gap's end
        candidate = (naive + timedelta(hours=1)).replace(tzinfo=zone)
    return candidate.astimezone(ZoneInfo("UTC"))


def _period_label(per: Literal["day", "week"] | timedelta) -> str:
    """A cap's period as the rule file writes it: ``day``, ``week``, ``7d``, ``36h``."""
    if isinstance(per, str):
        return per
    seconds = int(per.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _same_period(
    then: datetime, now: datetime, per: Literal["day", "week"] | timedelta, zone: ZoneInfo
) -> bool:
    if isinstance(per, timedelta):
        return now - per < then <= now
    local_then, local_now = then.astimezone(zone).date(), now.astimezone(zone).date()
    if per == "day":
        return local_then == local_now
    return local_then.isocalendar()[:2] == local_now.isocalendar()[:2]


def remember_contact(
    history: list[ContactRecord],
    channel: Channel,
    rule_id: str,
    at: datetime,
    ref: str | None = None,
) -> list[ContactRecord]:
    """The history with one more contact (``ref``: its action's, for feedback), bounded."""
    contact = ContactRecord(channel=channel, rule_id=rule_id, at=at, ref=ref)
    return [*history, contact][-CONTACT_HISTORY:]
