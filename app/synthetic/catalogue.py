"""The synthetic bank's world: screens, application funnels, regions, merchants, rhythms.

Plain data, shaped after real retail banking (the weights and drop-off rates say where):
changing a number here changes the traffic of every seed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

Platform: TypeAlias = Literal["ios", "android", "web"]
PLATFORMS: Final[tuple[Platform, ...]] = ("ios", "android", "web")

#: App screens a session may visit.
SCREENS: Final[tuple[str, ...]] = (
    "home",
    "accounts",
    "cards",
    "transfers",
    "mortgage_calculator",
    "personal_loan_offer",
    "wealth_overview",
    "investment_funds",
    "savings_goals",
    "settings",
)
BASE_SCREEN_WEIGHTS: Final[dict[str, float]] = {
    "home": 6.0,
    "accounts": 30.0,
    "cards": 14.0,
    "transfers": 16.0,
    "mortgage_calculator": 2.5,
    "personal_loan_offer": 3.5,
    "wealth_overview": 2.0,
    "investment_funds": 1.0,
    "savings_goals": 6.0,
    "settings": 4.0,
}


@dataclass(frozen=True, slots=True)
class Funnel:
    """An application flow: its steps, where people give up, and how it is entered."""

    name: str
    entry_screen: str
    steps: tuple[str, ...]
    drop_p: tuple[float, ...]  # probability of leaving at each step, given it was reached


#: Application funnels; per-step drop-off shaped after typical bank funnels (document and
#: offer steps lose the most people).
FUNNELS: Final[dict[str, Funnel]] = {
    f.name: f
    for f in (
        Funnel(
            "personal_loan_application",
            "personal_loan_offer",
            ("amount_and_term", "personal_details", "income_verification", "offer_review", "sign"),
            (0.10, 0.08, 0.35, 0.30, 0.20),
        ),
        Funnel(
            "credit_card_application",
            "cards",
            ("card_choice", "personal_details", "income_verification", "sign"),
            (0.15, 0.12, 0.25, 0.10),
        ),
        Funnel(
            "mortgage_application",
            "mortgage_calculator",
            (
                "property_details",
                "simulation",
                "personal_details",
                "income_documents",
                "valuation_booking",
                "offer_review",
            ),
            (0.20, 0.15, 0.15, 0.35, 0.25, 0.20),
        ),
        Funnel(
            "wealth_onboarding",
            "wealth_overview",
            ("risk_questionnaire", "suitability_test", "initial_funding"),
            (0.20, 0.30, 0.35),
        ),
    )
}
FUNNEL_WEIGHTS: Final[dict[str, tuple[float, float, float, float]]] = {
    # personal loan, credit card, mortgage, wealth — in FUNNELS order
    "mass": (0.55, 0.35, 0.08, 0.02),
    "affluent": (0.40, 0.15, 0.25, 0.20),
    "private": (0.35, 0.05, 0.20, 0.40),
}
FUNNEL_LIST: Final[tuple[Funnel, ...]] = tuple(FUNNELS.values())

#: (IANA time zone, language, share of customers, IBAN country prefix)
REGIONS: Final[tuple[tuple[str, str, float, str], ...]] = (
    ("Europe/Madrid", "es", 0.45, "ES"),
    ("Europe/London", "en", 0.15, "GB"),
    ("Europe/Lisbon", "pt", 0.12, "PT"),
    ("Europe/Berlin", "de", 0.13, "DE"),
    ("America/Mexico_City", "es", 0.15, "MX"),
)
REGION_CUM: Final = tuple(itertools.accumulate(r[2] for r in REGIONS))
IBAN_PREFIX: Final = {tz: cc for tz, _, _, cc in REGIONS}

MERCHANTS: Final[dict[str, tuple[str, ...]]] = {
    "Europe/Madrid": ("MERCADONA", "EL CORTE INGLES", "ZARA", "CARREFOUR", "REPSOL", "RENFE"),
    "Europe/London": ("TESCO", "SAINSBURYS", "PRET A MANGER", "TFL TRAVEL", "BOOTS", "SHELL"),
    "Europe/Lisbon": ("PINGO DOCE", "CONTINENTE", "GALP", "FNAC", "CP COMBOIOS", "WORTEN"),
    "Europe/Berlin": ("REWE", "EDEKA", "LIDL", "DB BAHN", "DM DROGERIE", "MEDIAMARKT"),
    "America/Mexico_City": ("OXXO", "WALMART MX", "LIVERPOOL", "PEMEX", "SORIANA", "SANBORNS"),
}
ONLINE_MERCHANTS: Final = ("AMAZON", "NETFLIX", "SPOTIFY", "UBER", "APPLE.COM/BILL", "IKEA")
BILLERS: Final = ("ELECTRICITY", "WATER", "MOBILE", "INTERNET", "INSURANCE", "GYM")
EMPLOYERS: Final = (
    "ACME SL",
    "GLOBEX SA",
    "INITECH GMBH",
    "UMBRELLA LTD",
    "HOOLI SA",
    "STARK INDUSTRIES",
    "WAYNE ENTERPRISES",
    "SOYLENT SA",
)
PEOPLE: Final = (
    "A. GARCIA",
    "M. LOPEZ",
    "J. SMITH",
    "L. SILVA",
    "K. MULLER",
    "R. HERNANDEZ",
    "S. MARTIN",
    "P. COSTA",
    "E. SCHMIDT",
    "C. BROWN",
)

#: Relative activity by local hour: quiet at night, peaks at lunch and in the evening.
HOURLY: Final[tuple[float, ...]] = (
    0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.20, 0.50, 0.80, 0.90, 0.90, 0.90,
    1.00, 1.00, 0.90, 0.80, 0.80, 0.90, 1.00, 1.00, 0.90, 0.70, 0.40, 0.15,
)  # fmt: skip
MEAN_HOURLY: Final = sum(HOURLY) / 24


REASON_BY_STEP: Final[dict[str, tuple[tuple[str, ...], tuple[float, ...]]]] = {
    "documents": (("document_upload_failed", "timeout", "closed_app"), (0.5, 0.75, 1.0)),
    "offer": (("offer_declined", "closed_app", "timeout"), (0.4, 0.7, 1.0)),
    "other": (("closed_app", "timeout", "identity_check_failed"), (0.55, 0.92, 1.0)),
}
DOCUMENT_STEPS: Final = frozenset({"income_verification", "income_documents", "initial_funding"})
OFFER_STEPS: Final = frozenset({"offer_review", "simulation", "card_choice"})
