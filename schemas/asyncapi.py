"""The AsyncAPI 3.0 document of every Kairos topic, for producers and channel teams.

One table, :data:`CHANNELS`, says for each topic of :class:`~schemas.topics.TopicNames` what
it carries, how its messages are keyed, and who writes and who reads it. :func:`document`
turns it into an AsyncAPI 3.0 document whose payloads reference the JSON Schema files
exported beside it, so ``kairos schemas export`` writes both from the same models and they
cannot disagree; ``tests/schemas/test_asyncapi.py`` fails when a topic has no channel here.

Topic names are written with a ``{prefix}`` channel parameter (``KAIROS_TOPIC_PREFIX``), the
addresses :class:`TopicNames` itself gives for the prefix ``"{prefix}"``. The operations are
the Kairos worker's own (AsyncAPI describes one application): it receives the inputs and
sends the outputs; the bank's producers and channel systems are named on each channel
(``x-producers``, ``x-consumers``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml import YAML

from schemas.actions import Channel
from schemas.topics import TopicNames

ASYNCAPI_FILE = "asyncapi.yaml"
#: The JSON Schema dialect pydantic writes: AsyncAPI's default schema format is draft-07.
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING = "0.5.0"

KAIROS = "Kairos worker"
CHANNEL_SYSTEMS = "channel systems (SMS gateway, push service, RM task queue)"

_CUSTOMER_KEY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "The customer_id, equal to the payload's: every input is co-partitioned "
    "by it with the customer's state.",
}


@dataclass(frozen=True)
class Message:
    """One kind of record on a topic: its model's schema file and its Kafka key."""

    #: The model's class name: the message id, and the title of its JSON Schema.
    name: str
    #: The model's name in the JSON Schema export (``<schema>.schema.json``).
    schema: str
    summary: str
    key: Mapping[str, Any]
    #: A JSON pointer into the schema file, for one member of a union (an event type).
    pointer: str = ""


@dataclass(frozen=True)
class ChannelSpec:
    """One topic: its address, its messages, who produces it and who consumes it."""

    id: str
    address: Callable[[TopicNames], str]
    description: str
    messages: tuple[Message, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    #: What the Kairos worker does with it: receive it, send it, or both (internal topics);
    #: "none" for a topic only the console writes (its audit trail).
    kairos: Literal["receive", "send", "both", "none"]


def _event(name: str, summary: str) -> Message:
    return Message(name, "event", summary, _CUSTOMER_KEY, pointer=f"/$defs/{name}")


_ACTION = Message("Action", "action", "One contact to make, on one channel.", _CUSTOMER_KEY)
_ACTION_PRODUCERS = (f"{KAIROS} (decide_and_contact)",)


def _action_channel(channel: Channel, system: str, rm_note: str = "") -> ChannelSpec:
    return ChannelSpec(
        id=f"{channel.value}Actions",
        address=lambda topics: topics.actions(channel),
        description=f"Contacts for the {system} to make. De-duplicate on action_id (the same "
        "decision always yields the same id; delivery is at least once) and never deliver "
        f"after expires_at.{rm_note}",
        messages=(_ACTION,),
        producers=_ACTION_PRODUCERS
        + ((f"{KAIROS} (reserve_rm_capacity)",) if channel is Channel.RM else ()),
        consumers=(system,),
        kairos="send",
    )


CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec(
        id="appClickEvents",
        address=lambda topics: topics.app_click,
        description="Screens customers open in the bank's app or web site.",
        messages=(_event("AppClick", "A screen or element the customer opened."),),
        producers=("the bank's app analytics",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="receive",
    ),
    ChannelSpec(
        id="transactionEvents",
        address=lambda topics: topics.transaction,
        description="Money moving in and out of the customer's accounts.",
        messages=(_event("Transaction", "A booked transaction."),),
        producers=("the bank's core banking",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="receive",
    ),
    ChannelSpec(
        id="dropOffEvents",
        address=lambda topics: topics.drop_off,
        description="Customers leaving an application flow (a loan, an account) unfinished.",
        messages=(_event("DropOff", "A flow abandoned at a step."),),
        producers=("the bank's onboarding and loan origination flows",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="receive",
    ),
    ChannelSpec(
        id="profiles",
        address=lambda topics: topics.profile,
        description="The latest profile of each customer, consent included (compacted). A "
        "profile replaces the stored one only if its updated_at is newer; absent consent "
        "means no. The README's profile table lists every field.",
        messages=(Message("CustomerProfile", "profile", "The customer's profile.", _CUSTOMER_KEY),),
        producers=("the bank's CRM or customer master",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="receive",
    ),
    ChannelSpec(
        id="feedback",
        address=lambda topics: topics.feedback,
        description="What became of each action: delivered, opened, failed, unsubscribed, an "
        "RM call's outcome. Re-sends keep their feedback_id and are applied once.",
        messages=(Message("Feedback", "feedback", "A channel's report.", _CUSTOMER_KEY),),
        producers=(CHANNEL_SYSTEMS,),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="receive",
    ),
    _action_channel(Channel.SMS, "SMS gateway"),
    _action_channel(Channel.PUSH, "push service"),
    _action_channel(
        Channel.RM,
        "RM task queue",
        " With an rm_capacity policy the worker owning the RM's daily count emits them.",
    ),
    ChannelSpec(
        id="decisions",
        address=lambda topics: topics.decisions,
        description="The audit trail: one record per rule that fired, sent or not, with its "
        "reason code and evidence; a deferral carries deferred_until.",
        messages=(
            Message("Decision", "decision", "One rule's verdict on one moment.", _CUSTOMER_KEY),
        ),
        producers=(f"{KAIROS} (decide_and_contact; reserve_rm_capacity for granted RM contacts)",),
        consumers=("audit and analytics", "support", "kairos report"),
        kairos="send",
    ),
    ChannelSpec(
        id="conversions",
        address=lambda topics: topics.conversions,
        description="Goals reached after a decision, for treated and held-out customers alike.",
        messages=(Message("Conversion", "conversion", "A goal reached.", _CUSTOMER_KEY),),
        producers=(f"{KAIROS} (decide_and_contact)",),
        consumers=("analytics", "kairos report"),
        kairos="send",
    ),
    ChannelSpec(
        id="deadLetters",
        address=lambda topics: topics.dead_letter,
        description="Rejected input with the reason, the error type and the bytes received "
        "(base64): fix the producer, then replay from raw_base64.",
        messages=(
            Message(
                "DeadLetter",
                "dead_letter",
                "A message Kairos could not take.",
                {
                    "type": "string",
                    "description": "The rejected message's key as received; empty if it had none.",
                },
            ),
        ),
        producers=(f"{KAIROS} (decide_and_contact, reserve_rm_capacity)",),
        consumers=("operations", "the producing team"),
        kairos="send",
    ),
    ChannelSpec(
        id="rules",
        address=lambda topics: topics.rules,
        description="Deployed rule bundles and the pointer to the live one (compacted, one "
        "partition; never time-retained: rollbacks read old bundles).",
        messages=(
            Message(
                "RulesetBundle",
                "ruleset_bundle",
                "The rule files of one deployed version.",
                {"type": "string", "pattern": "^bundle:.+$", "description": "bundle:<version>"},
            ),
            Message(
                "LivePointer",
                "live_pointer",
                "The version every worker must run.",
                {"type": "string", "const": "live"},
            ),
        ),
        producers=("kairos rules deploy / rollback (marketing ops)",),
        consumers=(f"{KAIROS} (rules watcher, every worker, no consumer group)", "kairos rules"),
        kairos="receive",
    ),
    ChannelSpec(
        id="timerTicks",
        address=lambda topics: topics.timers,
        description="Internal: wake-up calls for customers whose timer is due, on the "
        "customer's partition so they are decided in order with the customer's events.",
        messages=(Message("TimerTick", "timer_tick", "Wake up a customer.", _CUSTOMER_KEY),),
        producers=(f"{KAIROS} (timer scheduler)",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="both",
    ),
    ChannelSpec(
        id="rmRequests",
        address=lambda topics: topics.rm_requests,
        description="Internal: RM contacts waiting for the RM's daily capacity, keyed by RM "
        "(or branch) so one worker owns each RM's count.",
        messages=(
            Message(
                "RmRequest",
                "rm_request",
                "An RM contact pending capacity.",
                {
                    "type": "string",
                    "pattern": "^(rm|branch):.+$",
                    "description": "rm:<rm_id> or branch:<branch_id>",
                },
            ),
        ),
        producers=(f"{KAIROS} (decide_and_contact)",),
        consumers=(f"{KAIROS} (reserve_rm_capacity)",),
        kairos="both",
    ),
    ChannelSpec(
        id="rmReplies",
        address=lambda topics: topics.rm_replies,
        description="Internal: refusals for RM capacity, back to the customer's partition.",
        messages=(Message("RmReply", "rm_reply", "The RM's day was full.", _CUSTOMER_KEY),),
        producers=(f"{KAIROS} (reserve_rm_capacity)",),
        consumers=(f"{KAIROS} (decide_and_contact)",),
        kairos="both",
    ),
    ChannelSpec(
        id="consoleAudit",
        address=lambda topics: topics.console_audit,
        description="Who looked at which customer on the console, and when: written before "
        "the console shows the customer, so no look-up goes unrecorded. Holds customer ids: "
        "retain and restrict it as the bank's audit policy says.",
        messages=(
            Message(
                "ConsoleAudit",
                "console_audit",
                "One customer look-up.",
                {
                    **_CUSTOMER_KEY,
                    "description": "The customer_id looked up, equal to the payload's.",
                },
            ),
        ),
        producers=("kairos console (the customer page)",),
        consumers=("the bank's audit and data-protection teams",),
        kairos="none",
    ),
)

_INFO = {
    "title": "Kairos",
    "version": "1",
    "description": "Real-time event marketing for retail banks: bank events and customer "
    "profiles in, next-best-contact actions and their audit trail out. JSON values, UTF-8; "
    "topic names are `<KAIROS_TOPIC_PREFIX>.<suffix>`; every topic but the rules topic has "
    "KAIROS_PARTITIONS partitions, and inputs must match it. Delivery is at least once: "
    "de-duplicate on the ids each record carries. Faust's changelog topics of the workers' "
    "state tables (named after KAIROS_APP_ID) are the workers' own, not part of this "
    "contract. The version is the records' schema_version.",
    "license": {"name": "Apache-2.0"},
}


def document(schema_files: Mapping[str, str]) -> dict[str, Any]:
    """The AsyncAPI document; ``schema_files`` maps a model's export name to its file name."""
    topics = TopicNames("{prefix}")
    prefix = {"description": "KAIROS_TOPIC_PREFIX", "default": "kairos"}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in CHANNELS:
        address = spec.address(topics)
        kafka: dict[str, Any] = {"bindingVersion": KAFKA_BINDING}
        if address in topics.single_partition:
            kafka["partitions"] = 1
        if address in topics.compacted:
            kafka["topicConfiguration"] = {"cleanup.policy": ["compact"]}
        for message in spec.messages:
            messages[message.name] = _message(message, schema_files)
        channels[spec.id] = {
            "address": address,
            "description": spec.description,
            "parameters": {"prefix": prefix},
            "messages": {
                m.name: {"$ref": f"#/components/messages/{m.name}"} for m in spec.messages
            },
            "bindings": {"kafka": kafka},
            "x-producers": list(spec.producers),
            "x-consumers": list(spec.consumers),
        }
        actions: tuple[str, ...] = {"both": ("send", "receive"), "none": ()}.get(
            spec.kairos, (spec.kairos,)
        )
        for action in actions:
            operations[f"{action}{spec.id[0].upper()}{spec.id[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{spec.id}"},
                "messages": [
                    {"$ref": f"#/channels/{spec.id}/messages/{m.name}"} for m in spec.messages
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "info": _INFO,
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "KAIROS_BROKER_URL",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(message: Message, schema_files: Mapping[str, str]) -> dict[str, Any]:
    ref = f"./{schema_files[message.schema]}"
    if message.pointer:
        ref += f"#{message.pointer}"
    return {
        "name": message.name,
        "summary": message.summary,
        "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": ref}},
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING, "key": dict(message.key)}},
    }


def render(asyncapi: Mapping[str, Any]) -> str:
    """The document as YAML, in a stable layout (the checked-in copy is compared as text)."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.ignore_aliases = lambda _data: True  # shared dicts written out in full
    out = io.StringIO()
    yaml.dump(dict(asyncapi), out)
    # ruamel leaves a space at the end of a folded plain line; folding drops it on reading
    return "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines())
