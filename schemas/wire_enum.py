"""String enums that pydantic serialises without a Python call per value.

pydantic-core writes an enum field by reading the member's ``value``. In Python 3.11 that
attribute is the ``enum`` module's own Python-level property (0.24 us a read on the
reference machine), and the hot records are full of enums: a customer state with 32
contacts and 5 decision notes holds ~80 channels, statuses, outcomes and reasons, and it
is serialised every checkpoint that changed it. A plain ``property`` over
``operator.attrgetter`` reads the same attribute in C (0.14 us): the customer state of
the latency bench serialised 14 % faster (28.3 -> 23.6 us, ``bench/RESULTS.md``).

Behaviour is unchanged: ``member.value`` is the same string, and a property is a
descriptor, so the enum machinery does not take it for a member.
"""

from __future__ import annotations

import operator
from enum import StrEnum
from typing import TYPE_CHECKING


class WireEnum(StrEnum):
    """A :class:`~enum.StrEnum` whose ``value`` is read in C (see the module docstring)."""

    if not TYPE_CHECKING:  # to a type checker, ``value`` stays the enum's own
        value = property(operator.attrgetter("_value_"))
