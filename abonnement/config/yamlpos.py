"""YAML with a line and column for every node, safe against hostile input.

``yaml.safe_load`` forgets where values came from. We read libyaml's event stream and build
plain Python values from it ourselves:

- scalars resolve by the YAML 1.2 core schema (``NO`` stays the string "NO", not False);
  numbers with a fraction become ``Decimal`` — there is never a float in a config;
- explicit tags (``!!python/object``…) are refused;
- nesting is capped, and aliases count at their expanded size, so a billion-laughs document
  fails at once instead of eating the machine.

No node graph is kept: with a mark object per node it took ~30 times the file's size (3 GB
for 100,000 declared subscriptions). A document keeps its text and, per top-level section,
where its key, its value and each of its list entries were written (six integers an
entry). Any deeper position is looked up only when a problem is reported: the one entry's
text is composed again (the whole file when that entry cannot stand alone, e.g. it uses an
anchor written elsewhere) and walked along the problem's path, so a valid config pays
nothing for them.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
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

try:  # libyaml parses several times faster than the pure-Python loader
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Composer(_Base):  # type: ignore[misc, valid-type]
    """Parses events, or composes nodes (positions of a reported problem); tag resolution is
    ours (PyYAML's is YAML 1.1 and slow)."""

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


def _mark_of(node: Any) -> Mark:
    """The 1-based position where a node (or an event) starts."""
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(root: Node | None, path: Path) -> tuple[Node | None, Node | None, int]:
    """(key node, value node) of the deepest part of ``path`` found under ``root``, and how
    deep that is."""
    node, key_node, depth = root, None, 0
    for part in path:
        child = None
        if isinstance(node, MappingNode):
            for k, v in node.value:
                if isinstance(k, ScalarNode) and k.value == part:
                    key_node, child = k, v
                    break
        elif (
            isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
        ):
            key_node, child = None, node.value[part]
        if child is None:
            break
        node, depth = child, depth + 1
    return key_node, node, depth


def _pick(key_node: Node | None, node: Node, depth: int, wanted: int, key: bool) -> Mark:
    """The mark of a walk's result: the key's when asked for, or when a block value starts
    below its key (the key's line is where the reader looks); else the value's."""
    if key_node is not None and depth == wanted:
        key_mark, value_mark = _mark_of(key_node), _mark_of(node)
        if key or value_mark.line > key_mark.line:
            return key_mark
        return value_mark
    return _mark_of(node)


@dataclass(slots=True)
class Section:
    """Where a top-level section was written: its key and value (0-based line and column),
    and, for a list, where each entry starts and ends (line, column and character index of
    each, six integers an entry, in one array)."""

    key: tuple[int, int]
    value: tuple[int, int]
    entries: array | None = None  # type: ignore[type-arg]


_ENTRY = 6  # integers per list entry in Section.entries


@dataclass(slots=True)
class Document:
    """One YAML file: its data, its text, and where its sections and entries were written."""

    file: str
    data: Any
    text: str = ""
    sections: dict[str, Section] = field(default_factory=dict)
    start: tuple[int, int] = (0, 0)
    _root: Node | None = None  # the whole file composed, once a position needed it
    _entry: tuple[tuple[str, int], Node | None] | None = None  # the last entry composed

    def _composed(self) -> Node | None:
        if self._root is None and self.text:
            try:
                self._root = yaml.compose(self.text, Loader=_Composer)
            except (yaml.YAMLError, RecursionError):  # pragma: no cover - it parsed once
                return None
        return self._root

    def _entry_node(self, section: str, index: int) -> Node | None:
        """Entry ``index`` of list ``section`` composed alone (None: it cannot stand alone)."""
        if self._entry is not None and self._entry[0] == (section, index):
            return self._entry[1]
        entries = self.sections[section].entries
        _, column, begin, _, _, end = entries[index * _ENTRY : (index + 1) * _ENTRY]  # type: ignore[index]
        # indented as written, so columns stay; lines count from the entry's first
        text = " " * column + self.text[begin:end]
        try:
            node = yaml.compose(text, Loader=_Composer)
        except (yaml.YAMLError, RecursionError):  # an alias of an anchor written elsewhere
            node = None
        if node is not None and _mark_of(node) != Mark(1, column + 1):
            node = None  # pragma: no cover - defensive: not the entry we meant
        self._entry = ((section, index), node)
        return node

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """Position of ``path`` (of its key when ``key``), else of its nearest known ancestor."""
        if not path:
            return Mark(self.start[0] + 1, self.start[1] + 1)
        section = self.sections.get(path[0]) if isinstance(path[0], str) else None
        if section is None and isinstance(self.data, dict):  # no such section: the file's start
            return Mark(self.start[0] + 1, self.start[1] + 1)
        if section is None:  # not a mapping of sections (a test case file): walk it whole
            return self._walked(path, key)
        if len(path) == 1:
            key_mark = Mark(section.key[0] + 1, section.key[1] + 1)
            value_mark = Mark(section.value[0] + 1, section.value[1] + 1)
            return key_mark if key or value_mark.line > key_mark.line else value_mark
        entries, index = section.entries, path[1]
        if entries is not None and isinstance(index, int) and 0 <= index < len(entries) // _ENTRY:
            line, column = entries[index * _ENTRY], entries[index * _ENTRY + 1]
            if len(path) == 2:
                return Mark(line + 1, column + 1)
            node = self._entry_node(path[0], index)
            if node is not None:
                found = _pick(*_walk(node, path[2:]), len(path) - 2, key)
                return Mark(found.line + line, found.column)
        elif entries is not None:  # no such entry: the list's own position
            return Mark(section.value[0] + 1, section.value[1] + 1)
        return self._walked(path, key)

    def _walked(self, path: Path, key: bool) -> Mark:
        key_node, node, depth = _walk(self._composed(), path)
        if node is None:
            return Mark(1, 1)
        return _pick(key_node, node, depth, len(path), key)

    def problem(
        self, path: Path, message: str, hint: str | None = None, *, key: bool = False
    ) -> Problem:
        m = self.mark(path, key=key)
        return Problem(self.file, m.line, m.column, message, hint)


_NO_KEY = object()  # a mapping frame waiting for its next key
_MERGE_KEY = object()  # a mapping frame's pending key is a merge (`<<: *base`)


class _Frame:
    """A mapping or list being built from the events between its start and its end."""

    __slots__ = ("anchor", "event", "is_map", "key", "key_event", "merged", "size", "value")

    def __init__(self, event: Any, is_map: bool) -> None:
        self.event = event
        self.anchor = event.anchor
        self.is_map = is_map
        self.value: Any = {} if is_map else []
        self.size = 1
        self.key: Any = _NO_KEY
        self.key_event: Any = None
        self.merged: list[dict] | None = None


class _Builder:
    """Plain values from libyaml's events: no node is kept, only the top-level positions."""

    def __init__(self, file: str):
        self.file = file
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.written = 0  # values as written (an alias counts once): a plain file's own size
        self.sections: dict[str, Section] = {}
        # one string object per distinct key or string value: a config repeats its keys and
        # most of its values (currencies, dates, product ids) in every entry, and the raw
        # values and the catalog built from them are what a load holds at its peak
        self.same = {}.setdefault

    def fail(self, event: Any, message: str, hint: str | None = None) -> YamlProblem:
        m = _mark_of(event)
        return YamlProblem(Problem(self.file, m.line, m.column, message, hint))

    def scalar(self, event: Any) -> Any:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return self.same(text, text)  # quoted, or plain and tagged `!`: a string
            if text[:1] in _STRING_START:
                return self.same(text, text)
        elif tag == _STR:
            return self.same(text, text)
        else:
            raise self.fail(
                event, f"YAML tag {tag!r} is not allowed", "quote a string that starts with '!'"
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

    def close(self, frame: _Frame) -> tuple[Any, int]:
        """The finished value of ``frame`` and its expanded size; the cap checked."""
        value, size = frame.value, frame.size
        if frame.merged:
            for source in frame.merged:  # explicit keys win over merged ones
                for k, v in source.items():
                    value.setdefault(k, v)
        self.written += 2 * len(value) + 1 if frame.is_map else len(value) + 1
        # only what aliases add counts against the cap: a large file as written is bounded by
        # MAX_FILE_BYTES (100,000 declared subscriptions are several million values)
        if size > MAX_NODES + self.written:
            raise self.fail(
                frame.event,
                f"document expands to more than {MAX_NODES:,} values",
                "aliases (*name) that repeat large anchors are refused",
            )
        return value, size

    def build(self, get_event: Any) -> tuple[Any, tuple[int, int]]:
        """The document's value and where it starts, from the events after DocumentStart."""
        stack: list[_Frame] = []
        anchors, sections, scalar, same = self.anchors, self.sections, self.scalar, self.same
        entries: array | None = None  # type: ignore[type-arg]
        while True:
            event = get_event()
            cls = event.__class__
            if cls is ScalarEvent:
                value, size = scalar(event), 1
                if event.anchor is not None:
                    self._anchor(event, (value, 1))
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                    raise self.fail(event, "mapping keys must be plain scalars", "`key: value`")
                if len(stack) >= MAX_DEPTH:
                    raise self.fail(event, f"nesting deeper than {MAX_DEPTH} levels")
                if event.tag not in (None, "!", _SEQ, _MAP):
                    raise self.fail(event, f"YAML tag {event.tag!r} is not allowed")
                if len(stack) == 2 and entries is not None:
                    mark = event.start_mark
                    entries.extend((mark.line, mark.column, mark.index))
                elif len(stack) == 1 and stack[0].is_map and isinstance(stack[0].key, str):
                    mark = event.start_mark
                    entries = array("q") if cls is SequenceStartEvent else None
                    sections[stack[0].key] = Section(
                        stack[0].key_event, (mark.line, mark.column), entries
                    )
                stack.append(_Frame(event, cls is MappingStartEvent))
                continue
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                frame = stack.pop()
                value, size = self.close(frame)
                if frame.anchor is not None:
                    self._anchor(frame.event, (value, size))
                if len(stack) == 2 and entries is not None:
                    mark = event.end_mark
                    entries.extend((mark.line, mark.column, mark.index))
                if len(stack) == 1:
                    entries = None
            elif cls is AliasEvent:
                found = anchors.get(event.anchor)
                if found is None:
                    raise self.fail(event, "invalid YAML: found undefined alias")
                value, size = found
            else:  # pragma: no cover - libyaml sends nothing else inside a document
                raise self.fail(event, f"invalid YAML: unexpected {cls.__name__}")
            if not stack:
                return value, size
            parent = stack[-1]
            if parent.is_map:
                if parent.key is _NO_KEY:
                    if cls is not ScalarEvent:
                        raise self.fail(event, "mapping keys must be plain scalars", "`key: value`")
                    key = same(event.value, event.value)  # as written (`1:` is "1")
                    if key == _MERGE and event.tag is None and event.implicit[0]:
                        key = _MERGE_KEY  # a plain `<<`: a merge, not a key
                    elif key in parent.value:
                        raise self.fail(event, f"duplicate key `{key}`", "a key may appear once")
                    parent.key = key
                    if len(stack) == 1:
                        mark = event.start_mark
                        parent.key_event = (mark.line, mark.column)
                    continue
                key, parent.key = parent.key, _NO_KEY
                parent.size += size + 1
                if len(stack) == 1 and isinstance(key, str) and cls in (ScalarEvent, AliasEvent):
                    mark = event.start_mark  # a scalar or an alias as a section's value
                    sections[key] = Section(parent.key_event, (mark.line, mark.column))
                if key is _MERGE_KEY:
                    sources = value if isinstance(value, list) else [value]
                    if not all(isinstance(s, dict) for s in sources):
                        raise self.fail(event, "`<<` merges mappings only")
                    parent.merged = [*(parent.merged or ()), *sources]
                    continue
                parent.value[key] = value
            else:
                parent.size += size
                parent.value.append(value)
                if len(stack) == 2 and entries is not None and cls is not MappingEndEvent \
                        and cls is not SequenceEndEvent:  # fmt: skip
                    start, end = event.start_mark, event.end_mark
                    entries.extend((start.line, start.column, start.index,
                                    end.line, end.column, end.index))  # fmt: skip

    def _anchor(self, event: Any, built: tuple[Any, int]) -> None:
        if event.anchor in self.anchors:
            raise self.fail(event, f"invalid YAML: the anchor &{event.anchor} is defined twice",
                            "give each anchor a name of its own")  # fmt: skip
        self.anchors[event.anchor] = built


def load_document(text: str, file: str) -> Document:
    """Parse one YAML document. Raises ``YamlProblem`` with a position on any defect."""
    parser = _Composer(text)
    builder = _Builder(file)
    try:
        try:
            parser.get_event()  # the stream's start
            event = parser.get_event()
            if event.__class__ is StreamEndEvent:
                return Document(file, None)
            start = parser.peek_event().start_mark
            data, _ = builder.build(parser.get_event)
            parser.get_event()  # the document's end
            event = parser.get_event()
            if event.__class__ is DocumentStartEvent:
                line = event.start_mark.line + 1
                raise YamlProblem(Problem(file, line, 1, "more than one YAML document in a file"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise YamlProblem(
                Problem(file, line, column, f"invalid YAML: {exc.problem or exc.context}")
            ) from None
        except yaml.YAMLError as exc:
            raise YamlProblem(Problem(file, 1, 1, f"invalid YAML: {exc}")) from None
    finally:
        parser.dispose()
    return Document(file, data, text, builder.sections, (start.line, start.column))
