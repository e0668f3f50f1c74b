"""Topic names: one configurable prefix, fixed suffixes that make up the wire contract."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.actions import Channel


@dataclass(frozen=True)
class TopicNames:
    """Every topic Kairos reads or writes, for one prefix."""

    prefix: str = "kairos"

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def app_click(self) -> str:
        return self._name("events.app_click")

    @property
    def transaction(self) -> str:
        return self._name("events.transaction")

    @property
    def drop_off(self) -> str:
        return self._name("events.drop_off")

    @property
    def feedback(self) -> str:
        """Channel systems' reports on actions (delivered, opened, failed, ...)."""
        return self._name("feedback")

    @property
    def profile(self) -> str:
        return self._name("customers.profile")

    @property
    def decisions(self) -> str:
        return self._name("decisions")

    @property
    def conversions(self) -> str:
        """Goals reached after a decision, for treated and held-out customers alike."""
        return self._name("conversions")

    @property
    def dead_letter(self) -> str:
        return self._name("events.dlq")

    @property
    def rules(self) -> str:
        """Deployed ruleset bundles and the live pointer (see ``schemas.deployment``)."""
        return self._name("rules")

    @property
    def timers(self) -> str:
        """Internal wake-up calls for due absence timers, co-partitioned with the inputs."""
        return self._name("internal.timers")

    @property
    def rm_requests(self) -> str:
        """RM contacts waiting for capacity, keyed by RM or branch (not by customer)."""
        return self._name("internal.rm_requests")

    @property
    def rm_replies(self) -> str:
        """Refusals for RM capacity, back to the customer's partition."""
        return self._name("internal.rm_replies")

    @property
    def console_audit(self) -> str:
        """Who looked at which customer on the console, and when (``schemas.console_audit``)."""
        return self._name("console-audit")

    def actions(self, channel: Channel) -> str:
        return self._name(f"actions.{channel.value}")

    def for_event_type(self, event_type: str) -> str:
        return self._name(f"events.{event_type}")

    @property
    def event_inputs(self) -> tuple[str, ...]:
        return (self.app_click, self.transaction, self.drop_off)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.event_inputs, self.profile, self.feedback, self.timers, self.rm_replies)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (
            *(self.actions(c) for c in Channel),
            self.decisions,
            self.conversions,
            self.dead_letter,
        )

    @property
    def compacted(self) -> frozenset[str]:
        """Topics whose latest value per key is what matters."""
        return frozenset({self.profile, self.rules})

    @property
    def single_partition(self) -> frozenset[str]:
        """Topics read whole and in order by every worker, so they have one partition."""
        return frozenset({self.rules})
