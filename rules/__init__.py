"""The pure core: the rule-file language, the compiled ruleset and the engine.

No Kafka, no Faust, no clock of its own: the live worker (``agents/``) and the offline
tools (replay, backtest, rule tests) run the same code. Subpackages::

    language/   rule files in, checked and compiled values out (file:line:column errors)
    engine/     one input and one customer's state in; decisions and actions out

and beside them the compiled model (``ruleset``, ``features``, ``policy``), the state
updates every part shares (``state_update``), deploy records (``deployments``), and the
offline drivers (``replay``, ``backtest``, ``testing``).
"""

from rules.engine import EngineOptions, Verdict, decide, dispatch
from rules.language.loader import compile_sources, load_ruleset
from rules.ruleset import CompiledRule, Ruleset

__all__ = [
    "CompiledRule",
    "EngineOptions",
    "Ruleset",
    "Verdict",
    "compile_sources",
    "decide",
    "dispatch",
    "load_ruleset",
]
