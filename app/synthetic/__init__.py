"""Seeded synthetic bank customers and their event streams, and ``kairos generate``.

Why this exists: Kairos must be demonstrated, load-tested and tested end to end without
real customer data, which a bank will never hand over. The generator therefore has to be:

* believable — tiers, consent, time zones, daily rhythms, salaries, card spend, large
  outflows and application funnels that drop off where real funnels do, so that the
  marketing rules have something meaningful to fire on;
* deterministic — the same :class:`SyntheticConfig` always yields the same records, byte
  for byte, so a demo or a failing test can be replayed exactly;
* lazy and cheap — events come out of a heap merge of per-customer generators, so a run of
  millions of events holds only a few pending records per customer in memory;
* honest about the mess of production — re-deliveries (same ``event_id``), late arrivals
  (produced after their event time) and poison messages are part of the stream.

The generator imports neither Kafka nor Faust; producing its records is
:mod:`app.synthetic.generate`'s job (files or Kafka). One module per job: ``config`` (what
shapes a run), ``catalogue`` (the bank's world), ``profiles``, ``traffic`` (the merge),
``customer`` (one customer's timeline) over ``state`` with its behaviours ``money``,
``app_use`` and ``funnels``, and ``poison``.
"""

from app.synthetic.catalogue import FUNNELS, SCREENS
from app.synthetic.config import DEFAULT_START, SyntheticConfig, SyntheticRecord
from app.synthetic.generate import JsonlSink, KafkaSink, Pacing, Sink, now_start, write_traffic
from app.synthetic.poison import poison_messages
from app.synthetic.profiles import generate_profiles
from app.synthetic.traffic import traffic

__all__ = [
    "DEFAULT_START",
    "FUNNELS",
    "SCREENS",
    "JsonlSink",
    "KafkaSink",
    "Pacing",
    "Sink",
    "SyntheticConfig",
    "SyntheticRecord",
    "generate_profiles",
    "now_start",
    "poison_messages",
    "traffic",
    "write_traffic",
]
