"""How the per-event cost of ``decide`` grows with the number of rules (10, 100, 1,000).

Rules are indexed by event type and by a cheap discriminating condition
(``event.screen == "mortgage_calculator"``, ``event.category in [...]``), so an event only
meets the rules that could match it. The target (issue "rules scaling"): **1,000 rules cost
no more than 3x what 10 rules cost per event** — the raw per-event cost, everything
``decide`` does included.

What runs. The same seeded synthetic traffic (``app.synthetic``: 30k events of ~140
customers over 21 days, duplicates and late arrivals included) goes through
:class:`rules.offline.replay.Replay` — the live engine over an in-memory store, as the backtest
uses it — once with no rule at all (the baseline) and once per rule count. Events are
built before timing starts; only ``Replay.event`` is timed (profiles are loaded first,
untimed). Configurations are interleaved over the repeats, and the fastest repeat of
each is kept (the least disturbed by other processes), the median shown beside it.

The rules are generated, modelled on the example pack (``rules/examples``):

* 90% key on a discriminating event field with ``==`` or ``in`` — of those, 40% on
  screens, 30% on transaction categories, 10% each on drop-off flows, clicked elements
  and drop-off reasons — then conditions on the profile (tier, tags, lifecycle), on features
  (counts, sums, averages over 7 and 30 days), on amounts, steps, recency. Each key value
  carries about two rules, and the catalogue of values grows with the rule count: the
  generator's real screens, categories and flows come first (so rules fire and the
  measurement includes arbitration, consent, actions and absence timers), then invented
  ones (campaign landing screens ``offer_<k>``, ``merchant_category_<k>``, new flows);
* 10% cannot be indexed (conditions only on profile, features, amounts, recency): they
  are evaluated for every event of their type, as a real ruleset's catch-alls are;
* a few use ``after`` (a sequence: one hidden last-seen feature per rule), ``unless``
  (an absence wait), campaign windows (``start_at``/``end_at``), holdouts, or are disabled.

Features are the example pack's ``features.yaml`` plus nine more, the same set for every
configuration (the baseline included). The hidden features of ``after`` rules come with
those rules, so they count as rule cost.

Figures, per configuration:

* ``µs/event`` — wall time of ``Replay.event`` per event, best repeat (median beside it);
* ``events/s`` — its inverse;
* ``cand/event`` — candidate rules evaluated per event (``Verdict.evaluated``): what the
  index lets through;
* ``evals/s`` — candidate rule evaluations per second;
* ``decisions``, ``sent`` — decisions recorded and actions sent over the run.

Then the ratios: **raw** 1,000:10 (the target metric) and 100:10, and
**rule-attributable** ones, the baseline subtracted from both sides (the cost the rules
add, without the fixed per-event work: state copies, feature updates).

Run from the repository root (the script puts the root on ``sys.path`` itself)::

    python bench/rules_scaling.py                      # ~70 s on 2 cores
    python bench/rules_scaling.py --events 10000 --repeats 2
    python bench/rules_scaling.py --profile            # + cProfile of the largest ruleset
    python bench/rules_scaling.py --dump /tmp/rules    # write the generated rule files

The exit code is 0 whether or not the target is met: this measures, it does not gate.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.synthetic import FUNNELS, SCREENS, SyntheticConfig, traffic  # noqa: E402
from rules.language.loader import compile_sources  # noqa: E402
from rules.offline.replay import Replay  # noqa: E402
from rules.ruleset import Ruleset  # noqa: E402
from schemas.events import Event  # noqa: E402
from schemas.profile import CustomerProfile  # noqa: E402

RULE_COUNTS = (10, 100, 1000)
TARGET_RATIO = 3.0
SEED = 2026
DAYS = 21
EVENTS_PER_CUSTOMER_DAY = 12.0  # what app.synthetic produces at default activity, roughly
RULES_PER_KEY = 2  # rules sharing one key value (one screen, one category, ...)
UNINDEXED_EVERY = 10  # one rule in ten cannot be indexed

EXAMPLE_FEATURES = ROOT / "rules" / "examples" / "features.yaml"

#: Features beyond the example pack's, of every aggregate kind rules commonly read.
EXTRA_FEATURES = """
features:
  - name: app_clicks_7d
    aggregate: count
    event: app_click
    window: 7d
  - name: sessions_7d
    aggregate: distinct_count
    event: app_click
    value: event.session_id
    window: 7d
  - name: card_spend_30d
    aggregate: sum
    event: transaction
    value: event.amount
    when: event.category == "card_purchase"
    window: 30d
  - name: card_purchases_7d
    aggregate: count
    event: transaction
    when: event.category == "card_purchase"
    window: 7d
  - name: last_salary_amount
    aggregate: last
    event: transaction
    value: event.amount
    when: event.category == "salary"
  - name: largest_debit_30d
    aggregate: max
    event: transaction
    value: event.amount
    when: event.direction == "debit"
    window: 30d
  - name: credits_30d
    aggregate: sum
    event: transaction
    value: event.amount
    when: event.direction == "credit"
    window: 30d
  - name: dropoffs_30d
    aggregate: count
    event: drop_off
    window: 30d
  - name: last_dropoff_step
    aggregate: last
    event: drop_off
    value: event.step
"""

# -- key catalogues: real values (emitted by app.synthetic) first, then invented ones ------

_FUNNEL_SCREENS = tuple(FUNNELS) + tuple(f"{name}_completed" for name in FUNNELS)
_MARKETING_SCREENS = ("mortgage_calculator", "personal_loan_offer", "wealth_overview")
REAL_SCREENS = _MARKETING_SCREENS + tuple(
    s for s in (*SCREENS, *_FUNNEL_SCREENS) if s not in _MARKETING_SCREENS
)
REAL_CATEGORIES = (  # app.synthetic's transaction categories
    "salary",
    "card_purchase",
    "transfer_out",
    "loan_disbursement",
    "transfer_in",
    "direct_debit",
)
REAL_FLOWS = tuple(FUNNELS)
REAL_ELEMENTS = (
    "apply",
    "submitted",
    *dict.fromkeys(step for funnel in FUNNELS.values() for step in funnel.steps),
)
REAL_REASONS = (
    "document_upload_failed",
    "offer_declined",
    "timeout",
    "closed_app",
    "identity_check_failed",
)
_PRODUCTS = ("car_loan", "insurance_quote", "overdraft", "savings_account", "pension_plan")


@dataclass(frozen=True)
class KeyField:
    """An indexable event field: its event type, share of keyed rules, value catalogue."""

    event: str
    field: str
    weight: int  # out of 10 keyed rules
    real: tuple[str, ...]
    invent: Callable[[int], str]

    def values(self, count: int) -> tuple[str, ...]:
        """The first ``count`` values of the catalogue: real ones, then invented ones."""
        invented = (self.invent(k) for k in range(1, max(0, count - len(self.real)) + 1))
        return (*self.real, *invented)[:count]


KEY_FIELDS = (
    KeyField("app_click", "screen", 4, REAL_SCREENS, lambda k: f"offer_{k:03d}"),
    KeyField("transaction", "category", 3, REAL_CATEGORIES, lambda k: f"merchant_category_{k:03d}"),
    KeyField(
        "drop_off",
        "flow",
        1,
        REAL_FLOWS,
        lambda k: f"{_PRODUCTS[k % len(_PRODUCTS)]}_application_{k:02d}",
    ),
    KeyField("app_click", "element", 1, REAL_ELEMENTS, lambda k: f"banner_{k:03d}"),
    KeyField("drop_off", "reason", 1, REAL_REASONS, lambda k: f"error_code_{k:03d}"),
)
#: The order keyed rules are dealt in: 4 screens, 3 categories, 1 of each other field.
_DEAL = tuple(f for f in KEY_FIELDS for _ in range(f.weight))
_UNINDEXED_DEAL = ("transaction", "app_click", "transaction", "drop_off", "app_click")

# -- rule generation -------------------------------------------------------------------------

_TIERS = (["affluent", "private"], ["mass"], ["private"], ["affluent"])
_TAGS = ("homeowner", "young_professional", "digital_first", "senior", "student")
_CHANNELS = (["push"], ["push", "sms"], ["sms"], ["rm", "sms"], ["sms", "push"], ["rm"])
_COOLDOWNS = ("1d", "3d", "7d", "14d", "30d")
_TEAMS = ("cards-marketing", "lending-marketing", "wealth-marketing", "lifecycle", "retention")
_ABSENCE_EXITS = [
    {
        "event": "app_click",
        "when": 'event.screen == start.flow or event.screen == start.flow + "_completed"',
    },
    {"event": "transaction", "when": 'event.category == "loan_disbursement"'},
]


def _q(text: str) -> str:
    """A double-quoted literal for an expression."""
    return json.dumps(text)


def _key_condition(field: str, values: Sequence[str]) -> str:
    if len(values) == 1:
        return f"event.{field} == {_q(values[0])}"
    return f"event.{field} in [{', '.join(_q(v) for v in values)}]"


def _profile_condition(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return f"profile.tier in {json.dumps(rng.choice(_TIERS))}"
    if roll < 0.8:
        return f"{_q(rng.choice(_TAGS))} in profile.tags"
    return f"profile.lifecycle_stage == {_q(rng.choice(['active', 'onboarding']))}"


def _click_conditions(rng: random.Random) -> list[str]:
    return [
        rng.choice(
            [
                f"features.app_clicks_7d == {rng.randint(5, 40)}",
                f"features.sessions_7d >= {rng.randint(8, 14)}",
                f"features.wealth_screen_views_14d >= {rng.randint(2, 4)}",
                f"features.mortgage_calculator_views_7d >= {rng.randint(2, 4)}",
                f"hours_since(state.last_seen.transaction) <= {rng.choice([1, 6, 24])}",
                f"features.card_spend_30d >= {rng.choice([1500, 3000, 5000])}",
            ]
        ),
        _profile_condition(rng),
    ]


def _transaction_conditions(rng: random.Random) -> list[str]:
    return [
        rng.choice(
            [
                f"event.amount >= {rng.choice([500, 1000, 2500, 10000])}",
                f"features.card_spend_30d >= {rng.choice([1500, 3000, 6000])}",
                f"features.card_purchases_7d == {rng.randint(5, 15)}",
                f"features.avg_balance_30d < {rng.choice([200, 500, 1000])}",
                f"features.credits_30d >= {rng.choice([10000, 20000, 50000])}",
                'startswith(event.counterparty, "OTHERBANK")',
            ]
        ),
        _profile_condition(rng),
        *(
            [f'event.direction == "{rng.choice(["credit", "debit"])}"']
            if rng.random() < 0.3
            else []
        ),
    ]


def _dropoff_conditions(rng: random.Random) -> list[str]:
    return [
        rng.choice(
            [
                f"event.step >= {rng.randint(2, 4)}",
                "event.step >= event.steps_total - 1",
                f"features.dropoffs_30d >= {rng.randint(2, 4)}",
                f"features.last_dropoff_step >= {rng.randint(3, 4)}",
            ]
        ),
        _profile_condition(rng),
    ]


_CONDITIONS: dict[str, Callable[[random.Random], list[str]]] = {
    "app_click": _click_conditions,
    "transaction": _transaction_conditions,
    "drop_off": _dropoff_conditions,
}
_PARAMS: dict[str, list[dict[str, str]]] = {
    "app_click": [
        {"screen": "{{ event.screen }}"},
        {"views_7d": "{{ features.app_clicks_7d }}", "branch_id": "{{ profile.branch_id }}"},
    ],
    "transaction": [
        {"amount": "{{ event.amount }}", "currency": "{{ event.currency }}"},
        {"merchant": "{{ event.counterparty }}", "spend_30d": "{{ features.card_spend_30d }}"},
    ],
    "drop_off": [
        {"flow": "{{ event.flow }}", "step": "{{ event.step }}"},
        {"message": "{{ event.steps_total - event.step + 1 }} step(s) left"},
    ],
}


def _unindexed_conditions(event: str, rng: random.Random) -> list[str]:
    """Catch-alls: nothing an index can use (profile, features, amounts, recency)."""
    if event == "transaction":
        return rng.choice(
            [
                [f"event.amount >= {rng.choice([2000, 5000, 20000])}", 'profile.tier == "mass"'],
                [
                    "features.transfers_out_other_banks_7d >= 0.5 * features.avg_balance_30d",
                    'profile.tier in ["affluent", "private"]',
                ],
                [
                    f"features.card_purchases_7d == {rng.randint(10, 20)}",
                    '"student" in profile.tags',
                ],
                [
                    f"event.amount >= {rng.choice([3000, 8000])}",
                    "features.last_salary_amount >= 5000",
                ],
            ]
        )
    if event == "app_click":
        return rng.choice(
            [
                [f"days_since(state.last_seen.app_click) >= {rng.choice([14, 30, 60])}"],
                ['profile.lifecycle_stage == "onboarding"', "features.app_clicks_7d == 1"],
                [
                    f"features.app_clicks_7d == {rng.randint(60, 120)}",
                    '"digital_first" in profile.tags',
                ],
            ]
        )
    return rng.choice(
        [
            ["event.step >= event.steps_total - 1", 'profile.tier == "affluent"'],
            [f"features.dropoffs_30d == {rng.randint(3, 5)}"],
        ]
    )


def _rule(
    number: int, event: str, when: list[str], rng: random.Random, *, keyed_value: str | None
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f"gen-{number:04d}-{event.replace('_', '-')}",
        "version": 1,
        "owner": rng.choice(_TEAMS),
        "description": f"generated rule {number} on {keyed_value or event}",
        "event": event,
        "when": when,
        "channels": rng.choice(_CHANNELS),
        "template": f"template_{number:04d}",
        "params": rng.choice(_PARAMS[event]),
        "priority": rng.randint(10, 90),
        "ttl": rng.choice(["6h", "24h", "48h"]),
        "cooldown": rng.choice(_COOLDOWNS),
    }
    roll = rng.random()
    if roll < 0.1:
        rule["holdout"] = 10
    elif roll < 0.2:
        rule["max_per_customer"] = rng.randint(1, 3)
    if keyed_value is not None and keyed_value.startswith("offer_") and rng.random() < 0.3:
        rule["start_at"] = "2026-11-09T00:00:00+00:00"  # a campaign window
        rule["end_at"] = "2026-11-30T00:00:00+00:00"
    if rng.random() < 0.02:
        rule["enabled"] = False
    return rule


def generate_rules(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` rule mappings: 90% keyed, ~2 rules per key value, 10% unindexed."""
    rng = random.Random(f"{seed}:{count}")
    plan: list[KeyField | str] = []
    for number in range(count):
        if number % UNINDEXED_EVERY == UNINDEXED_EVERY - 1:
            plan.append(_UNINDEXED_DEAL[(number // UNINDEXED_EVERY) % len(_UNINDEXED_DEAL)])
        else:
            plan.append(_DEAL[(number - number // UNINDEXED_EVERY) % len(_DEAL)])
    per_field = {f.field: sum(1 for p in plan if p is f) for f in KEY_FIELDS}
    catalogue = {
        f.field: f.values(max(1, math.ceil(per_field[f.field] / RULES_PER_KEY))) for f in KEY_FIELDS
    }
    dealt = dict.fromkeys(per_field, 0)
    rules: list[dict[str, Any]] = []
    for number, item in enumerate(plan, start=1):
        if isinstance(item, str):
            rules.append(
                _rule(number, item, _unindexed_conditions(item, rng), rng, keyed_value=None)
            )
            continue
        values = catalogue[item.field]
        value = values[dealt[item.field] % len(values)]
        dealt[item.field] += 1
        keys = [value]
        if len(values) > 2 and rng.random() < 0.15:  # ``in [...]`` over two or three values
            keys += rng.sample([v for v in values if v != value], rng.randint(1, 2))
        when = [_key_condition(item.field, keys), *_CONDITIONS[item.event](rng)]
        rule = _rule(number, item.event, when, rng, keyed_value=value)
        if item.event == "drop_off" and rng.random() < 0.3:
            rule["unless"] = {"within": "30m", "events": _ABSENCE_EXITS}
        elif item.event != "drop_off" and rng.random() < 0.03:
            screen = rng.choice(_MARKETING_SCREENS)
            rule["after"] = {
                "event": "app_click",
                "when": f"event.screen == {_q(screen)}",
                "within": "7d",
            }
        rules.append(rule)
    return rules


_PLAIN = re.compile(r"^[a-z_][a-z0-9_-]*$")
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})


def _scalar(value: Any) -> str:
    """A YAML scalar: plain for simple words, single-quoted for expressions, else JSON."""
    if not isinstance(value, str):
        return json.dumps(value)
    if _PLAIN.match(value) and value not in _YAML_WORDS:
        return value
    return "'" + value.replace("'", "''") + "'"


def _yaml(value: dict[str, Any], indent: int) -> Iterator[str]:
    """Block-style YAML for the rule mappings, as a person would write them."""
    pad = " " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            yield f"{pad}{key}:"
            yield from _yaml(item, indent + 2)
        elif isinstance(item, list) and item and isinstance(item[0], dict):
            yield f"{pad}{key}:"
            for element in item:
                lines = list(_yaml(element, indent + 4))
                yield f"{pad}  - {lines[0].lstrip()}"
                yield from lines[1:]
        elif isinstance(item, list) and all(_PLAIN.match(str(e)) for e in item):
            yield f"{pad}{key}: [{', '.join(_scalar(e) for e in item)}]"
        elif isinstance(item, list):
            yield f"{pad}{key}:"
            yield from (f"{pad}  - {_scalar(e)}" for e in item)
        else:
            yield f"{pad}{key}: {_scalar(item)}"


def rule_file(rules: list[dict[str, Any]]) -> str:
    """A rule file holding ``rules``."""
    lines = ["rules:"]
    for rule in rules:
        body = list(_yaml(rule, 4))
        lines.append(f"  - {body[0].lstrip()}")
        lines.extend(body[1:])
    return "\n".join(lines) + "\n"


def sources(rule_count: int) -> dict[str, str]:
    """Every rule file of a configuration (features only when ``rule_count`` is 0)."""
    files = {
        "examples/features.yaml": EXAMPLE_FEATURES.read_text(encoding="utf-8"),
        "bench/features.yaml": EXTRA_FEATURES,
    }
    rules = generate_rules(rule_count) if rule_count else []
    for start in range(0, len(rules), 50):  # teams keep files of tens of rules
        files[f"bench/rules_{start // 50:03d}.yaml"] = rule_file(rules[start : start + 50])
    return files


# -- measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Pre-built profiles and events: decoding and generation are not measured."""

    profiles: list[CustomerProfile]
    events: list[Event]
    customers: int


def build_traffic(events: int, seed: int = SEED) -> Traffic:
    """About ``events`` events (exactly, unless the generator runs short) of DAYS days."""
    customers = max(10, math.ceil(events * 1.15 / (EVENTS_PER_CUSTOMER_DAY * DAYS)))
    profiles: list[CustomerProfile] = []
    built: list[Event] = []
    for record in traffic(SyntheticConfig(seed=seed, customers=customers, days=DAYS)):
        if record.kind == "profile":
            assert isinstance(record.model, CustomerProfile)
            profiles.append(record.model)
        else:
            assert not isinstance(record.model, CustomerProfile)
            built.append(record.model)
            if len(built) == events:
                break
    return Traffic(profiles, built, customers)


@dataclass
class Config:
    """One ruleset under test and its measurements."""

    label: str
    rule_count: int
    ruleset: Ruleset
    compile_seconds: float
    seconds: list[float] = field(default_factory=list)
    evaluated: int = 0
    decisions: int = 0
    sent: int = 0

    @property
    def enabled(self) -> int:
        return sum(1 for rule in self.ruleset.rules if rule.spec.enabled)

    @property
    def unindexed(self) -> int:
        return sum(1 for r in self.ruleset.rules if r.spec.enabled and r.index_hint is None)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def build_config(rule_count: int) -> Config:
    """Compile the configuration's ruleset, timing the compilation."""
    started = time.perf_counter()
    ruleset = compile_sources(sources(rule_count))
    elapsed = time.perf_counter() - started
    label = f"{rule_count:,} rules" if rule_count else "no rules"
    return Config(label, rule_count, ruleset, elapsed)


def run_once(config: Config, data: Traffic) -> None:
    """One timed pass of every event through a fresh replay."""
    replay = Replay(config.ruleset)
    for profile in data.profiles:
        replay.profile(profile)
    evaluated = decisions = sent = 0
    gc.collect()
    started = time.perf_counter()
    for event in data.events:
        verdicts = replay.event(event)
        evaluated += len(verdicts[-1].evaluated)
        for verdict in verdicts:
            decisions += len(verdict.decisions)
            sent += len(verdict.actions)
    config.seconds.append(time.perf_counter() - started)
    config.evaluated, config.decisions, config.sent = evaluated, decisions, sent


def profile_run(config: Config, data: Traffic, top: int) -> None:
    """Profile one pass (cProfile) and print where the time goes (own time, then cumulative)."""
    profiler = cProfile.Profile()
    profiler.enable()
    run_once(config, data)
    profiler.disable()
    config.seconds.pop()
    for order in ("tottime", "cumulative"):
        print(f"\ncProfile, {config.label}, top {top} by {order}:")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.strip_dirs().sort_stats(order).print_stats(top)


# -- report ------------------------------------------------------------------------------------


def _us(seconds: float, events: int) -> float:
    return seconds / events * 1e6


def report(configs: list[Config], data: Traffic, repeats: int) -> None:
    """The table, then the ratios against the target."""
    events = len(data.events)
    print(
        f"\n{events:,} events of {data.customers} customers over {DAYS} days, "
        f"best of {repeats} (median in brackets)\n"
    )
    header = (
        f"{'ruleset':<12}{'enabled':>8}{'unindexed':>10}{'compile s':>10}"
        f"{'µs/event':>18}{'events/s':>10}{'cand/event':>11}{'evals/s':>10}"
        f"{'decisions':>10}{'sent':>7}"
    )
    print(header)
    print("-" * len(header))
    for c in configs:
        best, median = _us(c.best, events), _us(c.median, events)
        per_event = c.evaluated / events
        print(
            f"{c.label:<12}{c.enabled:>8}{c.unindexed:>10}{c.compile_seconds:>10.1f}"
            f"{best:>9.1f} ({median:>6.1f}){events / c.best:>10,.0f}{per_event:>11.2f}"
            f"{c.evaluated / c.best:>10,.0f}{c.decisions:>10,}{c.sent:>7,}"
        )
    by_count = {c.rule_count: c for c in configs}
    base = by_count.get(0)
    low = by_count.get(min(RULE_COUNTS))
    if low is None:
        return
    print()
    for high_count in (100, 1000):
        high = by_count.get(high_count)
        if high is None:
            continue
        raw = high.best / low.best
        raw_median = high.median / low.median
        target = high_count == 1000
        name = f"{high_count:,}:{low.rule_count}"
        line = f"raw cost ratio {name:<9} {raw:5.2f}x (medians {raw_median:.2f}x)"
        if target:
            verdict = "MET" if raw <= TARGET_RATIO else "MISSED"
            line += f"   <- target metric: <= {TARGET_RATIO:g}x, {verdict}"
        print(line)
        if base is not None:
            added_low = low.best - base.best
            added_high = high.best - base.best
            attributable = added_high / added_low if added_low > 0 else math.inf
            print(
                f"  rule-attributable {name:<9} {attributable:5.2f}x "
                f"({_us(added_high, events):.1f} vs {_us(added_low, events):.1f} µs/event "
                f"above the no-rules baseline of {_us(base.best, events):.1f})"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000, help="events per pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per ruleset")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest ruleset")
    parser.add_argument("--top", type=int, default=30, help="rows of the cProfile listings")
    parser.add_argument("--dump", type=Path, help="write the generated rule files here")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeats < 1:
        parser.error("--events and --repeats must be positive")

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    if args.dump is not None:
        for name, text in sources(max(RULE_COUNTS)).items():
            path = args.dump / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        print(f"rule files of {max(RULE_COUNTS):,} rules written under {args.dump}")

    started = time.perf_counter()
    data = build_traffic(args.events)
    print(f"traffic: {len(data.events):,} events built in {time.perf_counter() - started:.1f}s")
    configs = [build_config(count) for count in (0, *RULE_COUNTS)]
    for repeat in range(1, args.repeats + 1):
        for config in configs:
            run_once(config, data)
        print(
            f"repeat {repeat}/{args.repeats}: "
            + ", ".join(f"{c.label} {_us(c.seconds[-1], len(data.events)):.1f}" for c in configs)
            + " µs/event"
        )
    report(configs, data, args.repeats)
    if args.profile:
        profile_run(configs[-1], data, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
