"""Read one rule file's YAML within bounds, keeping the line and column of every value.

Rule files are bounded (``MAX_*`` below), because the worker loads whatever was deployed:
a 2 KB file of nested YAML aliases once passed ``kairos rules deploy`` and then froze a
worker for ten seconds and a gigabyte. Every limit is checked while the YAML is read,
before any value is built or expanded, and a breach is one more problem with file, line and
column, never a traceback.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner

from rules.errors import Problem

#: Bytes per rule file. The round-trip YAML reader is pure Python (about 0.3 MB/s), so this
#: keeps the largest file's validation under half a second; a hundred rules fit, and a
#: ruleset may have any number of files. Checked before the file is read or parsed.
MAX_FILE_BYTES = 128 * 1024

#: Levels of nested lists and mappings. A real rule file needs about ten; the YAML reader
#: and ``plain_yaml`` recurse once per level, so 5,000 ``[`` ended in a ``RecursionError``,
#: and the reader's flow-key bookkeeping is quadratic in the depth. Counted as the reader
#: meets each ``[`` / ``{`` and each node, so a deep file stops at level 65.
MAX_NESTING = 64

#: Characters (roughly: one per scalar character, two per list or mapping) that the aliases
#: of one file may repeat once expanded. Anchors and aliases (``&a`` / ``*a``) are fine for
#: sharing a ``when:`` list or a few defaults; nested, they repeat a 2 KB file into a 33 MB
#: action ("billion laughs"). Summed per alias while the YAML is composed, before anything
#: is expanded.
MAX_ALIAS_EXPANSION = 64 * 1024

#: Values (scalars, lists and mappings) per rule file. Reading costs about 50 µs a value
#: however short it is, so 128 KiB of ``1,1,1,...`` took three seconds; ten thousand keep
#: any file under half a second and hold two hundred rules of forty values each.
MAX_VALUES = 10_000

_NESTING_HINT = "flatten it: a rule file needs about ten levels"


def plain_yaml(node: Any) -> Any:
    """Ruamel's commented containers to plain Python, for pydantic."""
    if isinstance(node, dict):
        return {str(k): plain_yaml(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain_yaml(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


class _LimitError(MarkedYAMLError):
    """A rule-file limit broken while reading the YAML: a message with a hint and a mark."""

    def __init__(self, message: str, mark: Any, hint: str) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.hint = hint


class _BoundedScanner(RoundTripScanner):
    """Refuses the 65th nested ``[`` or ``{`` as the scanner meets it.

    The composer's depth limit comes too late for flow collections: for every open ``[``
    the scanner keeps a possible key and re-checks all of them on each token, so 5,000
    ``[`` cost most of a second before the first node is composed.
    """

    def fetch_flow_collection_start(self, token_class: Any, to_push: str) -> None:
        if self.flow_level >= MAX_NESTING:
            raise _LimitError(
                f"lists and mappings nested more than {MAX_NESTING} levels deep",
                self.reader.get_mark(),
                _NESTING_HINT,
            )
        super().fetch_flow_collection_start(token_class, to_push)


class _BoundedComposer(Composer):
    """Composes the node graph, refusing too many values, alias loops and alias bombs.

    An alias is composed as the anchored node itself (shared, not copied), so counting
    here is cheap and exact: each node's expanded size is computed once, when it is
    complete, and each alias adds its node's size to the file's total.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        # YAML lets an anchor be redefined; the warning went to stderr once per anchor.
        self.warn_double_anchors = False
        self._sizes: dict[int, int] = {}
        self._expansion = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            if len(self._sizes) >= MAX_VALUES:
                raise _LimitError(
                    f"more than {MAX_VALUES:,} values in one file",
                    self.parser.peek_event().start_mark,
                    "split it into several rule files",
                )
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = self._expanded_size(node)
            return node
        event = self.parser.peek_event()
        node = super().compose_node(parent, index)
        size = self._sizes.get(id(node))
        if size is None:  # the anchored node is not complete: the alias is inside it
            raise _LimitError(
                f"alias *{event.anchor} is inside the value it repeats",
                event.start_mark,
                "an alias cannot repeat the list or mapping that contains it",
            )
        self._expansion += size
        if self._expansion > MAX_ALIAS_EXPANSION:
            raise _LimitError(
                f"alias *{event.anchor} makes this file's aliases repeat more than "
                f"{MAX_ALIAS_EXPANSION // 1024} KiB of values",
                event.start_mark,
                "write the values out: aliases that repeat aliases grow exponentially",
            )
        return node

    def _expanded_size(self, node: Any) -> int:
        if isinstance(node, ScalarNode):
            return 1 + len(node.value)
        if isinstance(node, SequenceNode):
            return 2 + sum(self._sizes[id(item)] for item in node.value)
        if isinstance(node, MappingNode):
            return 2 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        return 1


class _Constructor(RoundTripConstructor):
    """Gives a value that cannot be built (``2026-02-30``, a 5,000-digit number) its mark.

    Ruamel raises a bare ``ValueError`` for those (and an ``AttributeError`` for a
    ``!!set`` tag on a scalar), with no position: a traceback instead of a problem.
    """

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except Exception as exc:  # ruamel's constructors fail in many ways on odd input
            shown = f"{node.value[:40]!r}" if isinstance(node, ScalarNode) else "this value"
            if isinstance(exc, ValueError | OverflowError):
                reason = str(exc).split(";")[0]  # not "use sys.set_int_max_str_digits()"
            else:
                reason = f"not a valid {getattr(node.tag, 'value', node.tag)}"
            raise ConstructorError(
                problem=f"cannot read {shown}: {reason}",
                problem_mark=node.start_mark,
            ) from exc


def _bounded_yaml() -> YAML:
    """A round-trip reader (line and column of every value) with the limits above."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.max_depth = MAX_NESTING
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _Constructor
    return yaml


def file_too_large(display: str, size: int) -> Problem:
    return Problem(
        display,
        1,
        1,
        f"the file is {size:,} bytes; the limit is {MAX_FILE_BYTES // 1024} KiB",
        "split it into several rule files",
    )


def _position(text: str, index: int) -> tuple[int, int]:
    """0-based (line, column) of character ``index`` of ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), index - line_start


def read_document(display: str, text: str) -> tuple[Any, Problem | None]:
    """The YAML document in ``text``, or ``None`` and the problem that stopped the reading."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        return None, file_too_large(display, size)
    try:
        return _bounded_yaml().load(text), None
    except _LimitError as exc:
        mark = exc.problem_mark
        return None, _problem(display, mark.line, mark.column, exc.problem, exc.hint)
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        return None, _problem(
            display,
            mark.line,
            mark.column,
            f"lists and mappings nested more than {MAX_NESTING} levels deep",
            _NESTING_HINT,
        )
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        return None, _problem(
            display, mark.line if mark else 0, mark.column if mark else 0, f"YAML: {exc.problem}"
        )
    except ReaderError as exc:
        line, column = _position(text, exc.position)
        shown = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a byte"
        return None, _problem(
            display,
            line,
            column,
            f"YAML: character {shown} is not allowed: {exc.reason}",
            "remove the control character",
        )
    except (YAMLError, ValueError, OverflowError) as exc:  # the reader's last resort
        return None, _problem(
            display, 0, 0, f"YAML: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        )


def _problem(
    display: str, line: int, column: int, message: str, hint: str | None = None
) -> Problem:
    """A problem at a 0-based (line, column), as the YAML reader counts them."""
    return Problem(display, line + 1, column + 1, message, hint)
