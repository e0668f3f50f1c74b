"""Consent and reachability: which of a rule's channels may carry a marketing contact.

Consent is absolute (opt-in per channel, and a marketing opt-out overrides everything),
so this check runs before arbitration: a rule that cannot reach the customer never beats
one that can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.actions import Channel
from schemas.decisions import Reason
from schemas.profile import CustomerProfile


@dataclass(frozen=True)
class Reachability:
    """The chosen channel, or why none could be used."""

    channel: Channel | None
    reason_code: Reason
    explanation: str


def channel_consented(profile: CustomerProfile, channel: Channel) -> bool:
    """Whether marketing on ``channel`` is allowed at all (consent, opt-out)."""
    return not profile.marketing_opt_out and bool(getattr(profile.consent, channel.value))


def choose_channel(
    profile: CustomerProfile | None,
    preferences: list[Channel],
    capped: Mapping[Channel, str] | None = None,
    unreachable: Mapping[Channel, datetime] | None = None,
    resting: Mapping[Channel, str] | None = None,
) -> Reachability:
    """First usable channel in preference order: consented, receivable, reachable, not capped.

    When none is, the most telling reason why.
    """
    if profile is None:
        return Reachability(None, Reason.NO_PROFILE, "no profile known yet, so no consent")
    if profile.marketing_opt_out:
        return Reachability(None, Reason.MARKETING_OPT_OUT, "customer opted out of marketing")
    capped = capped or {}
    refused: list[tuple[Reason, str]] = []
    for channel in preferences:
        if not channel_consented(profile, channel):
            refused.append((Reason.NO_CONSENT, f"{channel.value}: no consent"))
        elif channel is Channel.PUSH and not profile.push_enabled:
            refused.append((Reason.PUSH_DISABLED, "push: notifications disabled on device"))
        elif channel is Channel.RM and profile.rm_id is None and profile.branch_id is None:
            refused.append((Reason.NO_CONSENT, "rm: no relationship manager or branch assigned"))
        elif unreachable and channel in unreachable:
            since = unreachable[channel].date().isoformat()
            refused.append((Reason.UNREACHABLE, f"{channel.value}: hard bounce on {since}"))
        elif resting and channel in resting:
            refused.append((Reason.FATIGUE, resting[channel]))
        elif channel in capped:
            refused.append((Reason.FREQUENCY_CAP, f"{channel.value}: {capped[channel]}"))
        else:
            skipped = f" (skipped {', '.join(text for _, text in refused)})" if refused else ""
            return Reachability(channel, Reason.RULE_MATCHED, f"via {channel.value}{skipped}")
    codes = {code for code, _ in refused}
    # Reachable but capped says more than "no consent"; all-push-disabled says what to fix.
    code = (
        Reason.FREQUENCY_CAP
        if Reason.FREQUENCY_CAP in codes
        else Reason.PUSH_DISABLED
        if codes == {Reason.PUSH_DISABLED}
        else Reason.UNREACHABLE
        if codes == {Reason.UNREACHABLE}
        else Reason.FATIGUE
        if Reason.FATIGUE in codes
        else Reason.NO_CONSENT
    )
    return Reachability(None, code, "; ".join(text for _, text in refused))
