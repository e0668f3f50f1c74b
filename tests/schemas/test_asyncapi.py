"""The AsyncAPI document: AsyncAPI 3.0, a channel per topic, every reference resolving.

No well-kept AsyncAPI validator installs from PyPI, so this checks the structure channel
teams and tools rely on: the version, one channel for every topic ``TopicNames`` knows (by
reflection, so a new topic without a channel fails), operations and channels that point at
what exists, a Kafka key for every message, and payloads that resolve, through the JSON
Schema files beside the document, to the schema of the model the message names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from ruamel.yaml import YAML

from schemas.actions import Channel
from schemas.asyncapi import ASYNCAPI_FILE, SCHEMA_FORMAT
from schemas.jsonschema_export import SCHEMA_DIR, generate
from schemas.topics import TopicNames
from testkit.factories import click, drop_off, profile, transaction

PREFIX = "kairos"


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(
        (SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8")
    )
    return document


def _every_topic(topics: TopicNames) -> set[str]:
    """Every topic name ``TopicNames`` gives: its string properties and each channel's actions."""
    names = {
        value
        for attribute, member in vars(TopicNames).items()
        if isinstance(member, property) and isinstance(value := getattr(topics, attribute), str)
    }
    return names | {topics.actions(channel) for channel in Channel}


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _registry() -> Registry[Any]:
    """The exported JSON Schema files, each under its file name as the document refers to it."""
    resources = [
        (f"./{path.name}", Resource.from_contents(json.loads(path.read_text(encoding="utf-8"))))
        for path in SCHEMA_DIR.glob("*.schema.json")
    ]
    return Registry().with_resources(resources)


def test_the_document_is_asyncapi_3(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] and asyncapi["info"]["version"]
    assert asyncapi["defaultContentType"] == "application/json"


def test_the_checked_in_document_loads_back_as_generated() -> None:
    text = generate()[ASYNCAPI_FILE]
    assert YAML(typ="safe").load(text) == YAML(typ="safe").load(
        (SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8")
    )


def test_every_topic_has_a_channel(asyncapi: dict[str, Any]) -> None:
    addresses = [
        channel["address"].replace("{prefix}", PREFIX) for channel in asyncapi["channels"].values()
    ]
    assert len(addresses) == len(set(addresses)), "one channel per topic"
    assert set(addresses) == _every_topic(TopicNames(PREFIX))
    for channel in asyncapi["channels"].values():
        assert channel["parameters"]["prefix"]["default"] == PREFIX


def test_every_channel_names_its_producers_and_consumers(asyncapi: dict[str, Any]) -> None:
    for name, channel in asyncapi["channels"].items():
        assert channel["x-producers"] and channel["x-consumers"], name
        assert channel["description"], name


def test_compaction_and_partitions_follow_the_topic_names(asyncapi: dict[str, Any]) -> None:
    topics = TopicNames(PREFIX)
    for channel in asyncapi["channels"].values():
        address = channel["address"].replace("{prefix}", PREFIX)
        kafka = channel["bindings"]["kafka"]
        compacted = kafka.get("topicConfiguration", {}).get("cleanup.policy") == ["compact"]
        assert compacted == (address in topics.compacted), address
        assert (kafka.get("partitions") == 1) == (address in topics.single_partition), address


def test_the_worker_receives_every_input_and_sends_every_output(asyncapi: dict[str, Any]) -> None:
    topics = TopicNames(PREFIX)
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in asyncapi["operations"].values():
        channel = _resolve(asyncapi, operation["channel"]["$ref"])
        by_action[operation["action"]].add(channel["address"].replace("{prefix}", PREFIX))
        for ref in operation["messages"]:
            prefix = operation["channel"]["$ref"] + "/messages/"
            assert ref["$ref"].startswith(prefix), "an operation's messages are its channel's"
            _resolve(asyncapi, ref["$ref"])
    assert set(topics.inputs) | {topics.rules, topics.rm_requests} <= by_action["receive"]
    assert set(topics.outputs) | {topics.timers, topics.rm_requests} <= by_action["send"]


def test_every_message_has_a_key_and_a_payload_that_resolves(asyncapi: dict[str, Any]) -> None:
    messages = asyncapi["components"]["messages"]
    for channel in asyncapi["channels"].values():
        for message_ref in channel["messages"].values():
            assert _resolve(asyncapi, message_ref["$ref"]) in messages.values()
    registry = _registry()
    for name, message in messages.items():
        assert message["bindings"]["kafka"]["key"], f"{name} has no Kafka key"
        assert message["payload"]["schemaFormat"] == SCHEMA_FORMAT
        ref = message["payload"]["schema"]["$ref"]
        resolved = registry.resolver().lookup(ref).contents  # raises if it does not resolve
        assert resolved["title"] == name, f"{name}'s payload is {resolved.get('title')}'s schema"


@pytest.mark.parametrize(
    ("message", "example"),
    [
        ("AppClick", click("C1")),
        ("Transaction", transaction("C1")),
        ("DropOff", drop_off("C1")),
        ("CustomerProfile", profile("C1")),
    ],
)
def test_producers_messages_validate_against_the_documented_payloads(
    asyncapi: dict[str, Any], message: str, example: dict[str, Any]
) -> None:
    ref = asyncapi["components"]["messages"][message]["payload"]["schema"]["$ref"]
    validator = Draft202012Validator({"$ref": ref}, registry=_registry())
    validator.validate(example)
    with pytest.raises(Exception, match="customer_id"):
        validator.validate({k: v for k, v in example.items() if k != "customer_id"})
