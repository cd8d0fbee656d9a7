"""YAML with a line and column for every node, safe against hostile input.

``yaml.safe_load`` forgets where values came from, and its recursive composer falls over on
deep nesting. We walk the parser's event stream ourselves, iteratively, and build plain Python
values plus a map from each value's path to its position. Along the way:

- scalars resolve by the YAML 1.2 core schema (``NO`` stays the string "NO", not False);
  numbers with a fraction become ``Decimal`` — there is never a float in a config;
- explicit tags (``!!python/object``…) are refused;
- nesting is capped, and aliases are counted at their expanded size, so a billion-laughs
  document fails after a few events instead of eating the machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from abonnement.errors import Problem

__all__ = ["MAX_DEPTH", "MAX_NODES", "Document", "Mark", "YamlProblem", "load_document"]

MAX_DEPTH = 64
MAX_NODES = 1_000_000

try:  # libyaml's parser is several times faster; both are iterative.
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

_NULL = re.compile(r"^(?:~|null|Null|NULL)?$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_DECIMAL = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_STR_TAGS = {None, "!", "tag:yaml.org,2002:str"}

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    line: int
    column: int


@dataclass(slots=True)
class Document:
    """One YAML file: its data, and where each value (and each mapping key) was written."""

    file: str
    data: Any
    marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """Position of ``path`` (of its key when ``key``), else of its nearest known ancestor."""
        if path in self.key_marks and (
            key or path not in self.marks or self.marks[path].line > self.key_marks[path].line
        ):
            return self.key_marks[path]  # a block value starts below its key: point at the key
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), Mark(1, 1))

    def problem(
        self, path: Path, message: str, hint: str | None = None, *, key: bool = False
    ) -> Problem:
        m = self.mark(path, key=key)
        return Problem(self.file, m.line, m.column, message, hint)


class YamlProblem(Exception):
    """A file that is not usable YAML; carries the ``Problem`` to report."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def _mark(event: yaml.Event) -> Mark:
    return Mark(event.start_mark.line + 1, event.start_mark.column + 1)


def _scalar(event: yaml.ScalarEvent, file: str) -> Any:
    if event.tag not in _STR_TAGS:
        m = _mark(event)
        raise YamlProblem(
            Problem(
                file,
                m.line,
                m.column,
                f"YAML tag {event.tag!r} is not allowed",
                "write plain values; quote a string that starts with '!'",
            )
        )
    text = event.value
    if event.tag == "tag:yaml.org,2002:str" or not event.implicit[0]:
        return text  # quoted, block or explicitly tagged: a string as written
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts; let the schema reject it
            return text
    if _DECIMAL.match(text):
        return Decimal(text)
    return text


class _Frame:
    __slots__ = ("anchor", "key", "path", "size", "value")

    def __init__(self, value: Any, path: Path, anchor: str | None):
        self.value = value
        self.path = path
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.size = 1


_NO_KEY = object()


def load_document(text: str, file: str) -> Document:
    """Parse one YAML document. Raises ``YamlProblem`` with a position on any defect."""
    doc = Document(file, None)
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int]] = {}
    total = 0
    documents = 0

    def fail(event: yaml.Event, message: str, hint: str | None = None) -> YamlProblem:
        m = _mark(event)
        return YamlProblem(Problem(file, m.line, m.column, message, hint))

    def child_path() -> Path:
        if not stack:
            return ()
        top = stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key)

    def attach(value: Any, size: int, event: yaml.Event, is_scalar: bool) -> None:
        nonlocal total
        total += size
        if total > MAX_NODES:
            raise fail(
                event,
                f"document expands to more than {MAX_NODES:,} values",
                "aliases (*name) that repeat large anchors are refused",
            )
        if not stack:
            doc.data = value
            return
        top = stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
            return
        if top.key is _NO_KEY:
            if not is_scalar or isinstance(value, (list, dict)):
                raise fail(event, "mapping keys must be plain scalars", "write `key: value`")
            key = value if isinstance(value, str) else str(value).lower()
            if key == "<<":
                top.key = key
            elif key in top.value:
                raise fail(event, f"duplicate key `{key}`", "each key may appear once per mapping")
            else:
                top.key = key
            doc.key_marks[(*top.path, key)] = _mark(event)
            return
        if top.key == "<<":  # merge key: earlier explicit keys win
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise fail(event, "`<<` merges mappings only")
                for k, v in source.items():
                    top.value.setdefault(k, v)
        else:
            top.value[top.key] = value
        top.key = _NO_KEY

    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise fail(event, "more than one YAML document in a file", "remove `---`")
            elif isinstance(event, yaml.ScalarEvent):
                value = _scalar(event, file)
                path = child_path()
                is_value = not (stack and isinstance(stack[-1].value, dict))
                is_value = is_value or stack[-1].key is not _NO_KEY
                if is_value:
                    doc.marks[path] = _mark(event)
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
                attach(value, 1, event, True)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if event.tag not in _STR_TAGS and not event.implicit:
                    raise fail(event, f"YAML tag {event.tag!r} is not allowed")
                if len(stack) >= MAX_DEPTH:
                    raise fail(event, f"nesting deeper than {MAX_DEPTH} levels")
                if stack and isinstance(stack[-1].value, dict) and stack[-1].key is _NO_KEY:
                    raise fail(event, "mapping keys must be plain scalars", "write `key: value`")
                path = child_path()
                doc.marks[path] = _mark(event)
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                stack.append(_Frame(container, path, event.anchor))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                total -= frame.size - 1  # children were counted as they attached
                if frame.anchor:
                    anchors[frame.anchor] = (frame.value, frame.size)
                attach(frame.value, frame.size, event, False)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise fail(event, f"unknown alias *{event.anchor}")
                value, size = anchors[event.anchor]
                attach(value, size, event, not isinstance(value, (list, dict)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        raise YamlProblem(Problem(file, line, column, message)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(file, 1, 1, f"invalid YAML: {exc}")) from None
    doc.marks.setdefault((), Mark(1, 1))
    return doc
