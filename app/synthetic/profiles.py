"""The synthetic customer base: believable, correlated profiles, the same for every seed."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime

from app.synthetic.catalogue import REGION_CUM, REGIONS
from app.synthetic.config import SyntheticConfig
from schemas.profile import Consent, CustomerProfile


def generate_profiles(config: SyntheticConfig) -> list[CustomerProfile]:
    """Create the customer base: one profile per customer, ids ``C000001`` upwards.

    Tiers are stratified (exactly ~80/17/3 % after rounding, then shuffled) rather than
    drawn independently, so every seed has the same mix and demo counts do not swing with
    the seed.

    Args:
        config: Run settings; only ``seed``, ``customers`` and ``start`` matter here.

    Returns:
        The profiles, ordered by customer id.

    """
    rng = random.Random(config.seed)
    n = config.customers
    n_private = round(n * 0.03)
    n_affluent = round(n * 0.17)
    tiers = ["private"] * n_private + ["affluent"] * n_affluent
    tiers += ["mass"] * (n - len(tiers))
    rng.shuffle(tiers)
    updated_at = config.start.astimezone(UTC)
    return [_make_profile(rng, i + 1, tier, updated_at) for i, tier in enumerate(tiers)]


def _make_profile(
    rng: random.Random, number: int, tier: str, updated_at: datetime
) -> CustomerProfile:
    """Draw one believable profile; attributes are correlated the way they are in real life."""
    region = REGIONS[bisect.bisect(REGION_CUM, rng.random() * REGION_CUM[-1])]
    timezone, language = region[0], region[1]
    if rng.random() < 0.06:  # expats and people who simply prefer English
        language = "en"
    mass = tier == "mass"
    student = mass and rng.random() < 0.12
    senior = not student and rng.random() < {"mass": 0.16, "affluent": 0.14}.get(tier, 0.22)
    tags: list[str] = []
    if student:
        tags.append("student")
    if senior:
        tags.append("senior")
    if not student and not senior and rng.random() < 0.40:
        tags.append("young_professional")
    if not student and rng.random() < {"mass": 0.30, "affluent": 0.60}.get(tier, 0.85):
        tags.append("homeowner")
    if rng.random() < (0.75 if student else 0.10 if senior else 0.45):
        tags.append("digital_first")
    if not mass and rng.random() < (0.10 if tier == "affluent" else 0.40):
        tags.append("business_owner")

    roll = rng.random()
    stage = "onboarding" if roll < 0.08 else "dormant" if roll < 0.18 else "active"
    consent = Consent(
        sms=rng.random() < 0.70,
        push=rng.random() < 0.60,
        rm=not mass and rng.random() < 0.90,
    )
    return CustomerProfile(
        customer_id=f"C{number:06d}",
        updated_at=updated_at,
        tier=tier,
        tags=tags,
        lifecycle_stage=stage,
        consent=consent,
        marketing_opt_out=rng.random() < 0.05,
        push_enabled=rng.random() < (0.85 if "digital_first" in tags else 0.50),
        timezone=timezone,
        language=language,
        rm_id=None if mass else f"RM{rng.randint(1, 60):03d}",
        branch_id=None if mass else f"BR{rng.randint(1, 25):03d}",
    )
