"""Short fingerprints of ids, for what the customer state remembers.

The state keeps recent event ids (to recognise re-deliveries), channel report ids (the
same, for feedback) and action ids (to match feedback to its contact). Whole ids are long
and random, so they do not compress; 48 bits of their hash are a third of the bytes, and a
collision between two ids of one customer is ~never (2^-48 a pair).
"""

from __future__ import annotations

import hashlib


def fingerprint(identifier: str) -> str:
    """48 bits of ``identifier``'s BLAKE2b hash, as 12 hex characters."""
    return hashlib.blake2b(identifier.encode(), digest_size=6).hexdigest()
