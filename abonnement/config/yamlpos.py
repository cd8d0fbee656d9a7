"""YAML with a line and column for every node, safe against hostile input.

``yaml.safe_load`` forgets where values came from. We let libyaml compose the node graph
(nodes keep their marks), then turn it into plain Python values ourselves:

- scalars resolve by the YAML 1.2 core schema (``NO`` stays the string "NO", not False);
  numbers with a fraction become ``Decimal`` — there is never a float in a config;
- explicit tags (``!!python/object``…) are refused;
- nesting is capped, and aliases count at their expanded size, so a billion-laughs document
  fails at once instead of eating the machine.

Positions are looked up only when a problem is reported, by walking the node graph along the
problem's path, so a valid config pays nothing for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from abonnement.errors import Problem, YamlProblem

__all__ = ["MAX_DEPTH", "MAX_NODES", "Document", "Mark", "Path", "YamlProblem", "load_document"]

MAX_DEPTH = 64
MAX_NODES = 1_000_000

_PLAIN = "?plain"  # our marker for an untagged plain scalar; we resolve it below
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "<<"

_NULL = re.compile(r"^(?:~|null|Null|NULL)?$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_DECIMAL = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")

Path = tuple[str | int, ...]


# No null, bool or number starts with one of these, so such a plain scalar is a string and
# skips the regexes below (most values of a config).
_STRING_START = frozenset("abcdeghijkmopqrsuvwxyzABCDEGHIJKMOPQRSUVWXYZ_/")

try:  # libyaml composes several times faster than the pure-Python loader
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Composer(_Base):  # type: ignore[misc, valid-type]
    """Composes nodes only; tag resolution is ours (PyYAML's is YAML 1.1 and slow)."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Mark:
    line: int
    column: int


def _mark_of(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


@dataclass(slots=True)
class Document:
    """One YAML file: its data, and the node graph that knows where each value was written."""

    file: str
    data: Any
    root: Node | None = None

    def _nodes(self, path: Path) -> tuple[Node | None, Node | None, int]:
        """(key node, value node) of the deepest part of ``path`` found, and how deep that is."""
        node, key_node, depth = self.root, None, 0
        for part in path:
            child = None
            if isinstance(node, MappingNode):
                for k, v in node.value:
                    if isinstance(k, ScalarNode) and k.value == part:
                        key_node, child = k, v
                        break
            elif (
                isinstance(node, SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                key_node, child = None, node.value[part]
            if child is None:
                break
            node, depth = child, depth + 1
        return key_node, node, depth

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """Position of ``path`` (of its key when ``key``), else of its nearest known ancestor."""
        key_node, node, depth = self._nodes(path)
        if node is None:
            return Mark(1, 1)
        if key_node is not None and depth == len(path):
            key_mark, value_mark = _mark_of(key_node), _mark_of(node)
            # a block value starts below its key: the key's line is where the reader looks
            if key or value_mark.line > key_mark.line:
                return key_mark
            return value_mark
        return _mark_of(node)

    def problem(
        self, path: Path, message: str, hint: str | None = None, *, key: bool = False
    ) -> Problem:
        m = self.mark(path, key=key)
        return Problem(self.file, m.line, m.column, message, hint)


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.memo: dict[int, tuple[Any, int]] = {}
        self.written = 0  # nodes as written (an alias counts once): a plain file's own size

    def fail(self, node: Node, message: str, hint: str | None = None) -> YamlProblem:
        m = _mark_of(node)
        return YamlProblem(Problem(self.file, m.line, m.column, message, hint))

    def scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if text[:1] in _STRING_START and tag == _PLAIN:
            return text
        if tag != _PLAIN:
            raise self.fail(
                node, f"YAML tag {tag!r} is not allowed", "quote a string that starts with '!'"
            )
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT.match(text):
            try:
                return int(text)
            except ValueError:  # more digits than Python converts; the schema will say more
                return text
        if _DECIMAL.match(text):
            return Decimal(text)
        return text

    def build(self, node: Node, depth: int) -> tuple[Any, int]:
        """(value, expanded size). Depth is capped, so this recursion is bounded."""
        if isinstance(node, ScalarNode):
            return self.scalar(node), 1
        if id(node) in self.memo:  # an alias: the same node again, counted at full size
            return self.memo[id(node)]
        if depth >= MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        if node.tag not in (_SEQ, _MAP):
            raise self.fail(node, f"YAML tag {node.tag!r} is not allowed")
        size = 1
        scalar = self.scalar
        if isinstance(node, SequenceNode):
            self.written += len(node.value) + 1
            value: Any = []
            for child in node.value:
                if child.__class__ is ScalarNode:  # inlined: most nodes are scalars
                    value.append(scalar(child))
                    size += 1
                    continue
                item, n = self.build(child, depth + 1)
                value.append(item)
                size += n
        else:
            self.written += 2 * len(node.value) + 1  # a key and a value per pair
            value = {}
            merged: list[dict] = []
            for key_node, value_node in node.value:
                if key_node.__class__ is not ScalarNode:
                    raise self.fail(key_node, "mapping keys must be plain scalars", "`key: value`")
                key = key_node.value
                if value_node.__class__ is ScalarNode:
                    item, n = scalar(value_node), 1
                else:
                    item, n = self.build(value_node, depth + 1)
                size += n + 1
                if key == _MERGE and key_node.tag == _PLAIN:
                    sources = item if isinstance(item, list) else [item]
                    if not all(isinstance(s, dict) for s in sources):
                        raise self.fail(value_node, "`<<` merges mappings only")
                    merged.extend(sources)
                    continue
                if key in value:
                    raise self.fail(key_node, f"duplicate key `{key}`", "a key may appear once")
                value[key] = item
            for source in merged:  # explicit keys win over merged ones
                for k, v in source.items():
                    value.setdefault(k, v)
        # only what aliases add counts against the cap: a large file as written is bounded by
        # MAX_FILE_BYTES (100,000 declared subscriptions are several million values)
        if size > MAX_NODES + self.written:
            raise self.fail(
                node,
                f"document expands to more than {MAX_NODES:,} values",
                "aliases (*name) that repeat large anchors are refused",
            )
        self.memo[id(node)] = (value, size)
        return value, size


def load_document(text: str, file: str) -> Document:
    """Parse one YAML document. Raises ``YamlProblem`` with a position on any defect."""
    try:
        root = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        if "expected a single document" in str(exc.context):
            message, line, column = "more than one YAML document in a file", line, 1
        raise YamlProblem(Problem(file, line, column, message)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(file, 1, 1, f"invalid YAML: {exc}")) from None
    except RecursionError:  # defence in depth; libyaml caps nesting at 1000 levels
        raise YamlProblem(Problem(file, 1, 1, "nesting too deep")) from None
    if root is None:
        return Document(file, None, None)
    data, _ = _Builder(file).build(root, 0)
    return Document(file, data, root)
