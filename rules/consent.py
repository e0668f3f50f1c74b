"""Consent and reachability: which of a rule's channels may carry a marketing contact.

Consent is absolute (opt-in per channel, and a marketing opt-out overrides everything),
so this check runs before arbitration: a rule that cannot reach the customer never beats
one that can.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.actions import Channel
from schemas.decisions import Reason
from schemas.profile import CustomerProfile


@dataclass(frozen=True)
class Reachability:
    """The chosen channel, or why none could be used."""

    channel: Channel | None
    reason_code: Reason
    explanation: str


def choose_channel(profile: CustomerProfile | None, preferences: list[Channel]) -> Reachability:
    """First channel in preference order the customer agreed to and can receive."""
    if profile is None:
        return Reachability(None, Reason.NO_PROFILE, "no profile known yet, so no consent")
    if profile.marketing_opt_out:
        return Reachability(None, Reason.MARKETING_OPT_OUT, "customer opted out of marketing")
    refused: list[str] = []
    only_push_disabled = True
    for channel in preferences:
        if not getattr(profile.consent, channel.value):
            refused.append(f"{channel.value}: no consent")
            only_push_disabled = False
        elif channel is Channel.PUSH and not profile.push_enabled:
            refused.append("push: notifications disabled on device")
        elif channel is Channel.RM and profile.rm_id is None and profile.branch_id is None:
            refused.append("rm: no relationship manager or branch assigned")
            only_push_disabled = False
        else:
            skipped = f" (skipped {', '.join(refused)})" if refused else ""
            return Reachability(channel, Reason.RULE_MATCHED, f"via {channel.value}{skipped}")
    code = Reason.PUSH_DISABLED if only_push_disabled else Reason.NO_CONSENT
    return Reachability(None, code, "; ".join(refused))
