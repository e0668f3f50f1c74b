"""The rule-file language: durations, expressions, params, scope, the spec and the loader.

Text in, checked and compiled values out; every problem with its file, line and column.

Only the leaf modules' names are re-exported here. ``spec`` and ``loader`` build on the
compiled model (``rules.policy``, ``rules.features``, ``rules.ruleset``), which itself reads
durations and expressions from this package; importing them here would make a cycle, so
they are imported from their modules: ``rules.language.loader.load_ruleset``.
"""

from rules.language.durations import DURATION_PATTERN, Duration, parse_duration
from rules.language.expression_types import (
    ANY,
    DATETIME,
    NUMBER,
    CompiledExpression,
    Context,
    ExpressionError,
    FieldType,
)
from rules.language.expressions import compile_expression, read_field
from rules.language.params import ParamsTooLargeError, Renderer
from rules.language.yaml_reader import plain_yaml

__all__ = [
    "ANY",
    "DATETIME",
    "DURATION_PATTERN",
    "NUMBER",
    "CompiledExpression",
    "Context",
    "Duration",
    "ExpressionError",
    "FieldType",
    "ParamsTooLargeError",
    "Renderer",
    "compile_expression",
    "parse_duration",
    "plain_yaml",
    "read_field",
]
