"""What a rule may read, derived from the wire models so the two can never disagree.

Adding a field to an event model makes it usable in rules, with type checks, and a typo
in a rule gets a "did you mean" against the real field names.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel

from rules.language.expression_types import ANY, BOOL, DATETIME, LIST, NUMBER, STRING, FieldType
from schemas.events import EVENT_MODELS
from schemas.feedback import ContactOutcome
from schemas.profile import CustomerProfile
from schemas.state import CustomerState


def type_of(annotation: Any) -> FieldType:
    """Map a Python annotation to the expression language's static type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return type_of(members[0]) if len(members) == 1 else FieldType(ANY)
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return FieldType(STRING, values=frozenset(values))
        return FieldType(ANY)
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return FieldType(LIST, item=type_of(args[0]) if args else FieldType(ANY))
    if origin is dict:
        args = typing.get_args(annotation)
        return FieldType("map", open_keys=True, item=type_of(args[1]) if args else FieldType(ANY))
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return model_type(annotation)
        if issubclass(annotation, bool):
            return FieldType(BOOL)
        if issubclass(annotation, int | float | Decimal):
            return FieldType(NUMBER)
        if issubclass(annotation, str):
            return FieldType(STRING)
        if issubclass(annotation, datetime | AwareDatetime):  # pydantic's is no subclass
            return FieldType(DATETIME)
    return FieldType(ANY)


@cache
def model_type(model: type[BaseModel]) -> FieldType:
    """A record type with one field per model field."""
    fields = {name: type_of(info.annotation) for name, info in model.model_fields.items()}
    return FieldType("record", fields=fields)


#: What ``event`` is for each event type, and for the contact outcomes features may count.
_SOURCES: Mapping[str, type[BaseModel]] = {**EVENT_MODELS, "contact_outcome": ContactOutcome}


def rule_scope(
    event_type: str,
    *,
    features: Mapping[str, FieldType] | None = None,
    start_event_type: str | None = None,
) -> Mapping[str, FieldType]:
    """The roots an expression about an ``event_type`` event can read.

    ``features`` adds ``features.<name>``; ``start_event_type`` adds ``start``, the event
    that opened an absence wait (so an exit can be matched to its entry).
    """
    state_fields = dict(model_type(CustomerState).fields or {})
    internal_fields = (
        "profile",
        "features",
        "timers",
        "rules",
        "recent_event_ids",
        "recent_decisions",  # kept by the worker only: offline, a rule reading it would differ
        "contacts",
        "goals",
    )
    for internal in internal_fields:
        state_fields.pop(internal, None)  # profile is read as ``profile``; the rest is ours
    scope: dict[str, FieldType] = {
        "event": model_type(_SOURCES[event_type]),
        "profile": model_type(CustomerProfile),
        "state": FieldType("record", fields=state_fields),
    }
    if features is not None:
        scope["features"] = FieldType("record", fields=dict(features), by_key=True)
    if start_event_type is not None:
        scope["start"] = model_type(EVENT_MODELS[start_event_type])
    return scope
