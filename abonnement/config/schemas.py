"""The JSON Schemas of the config sections, and their errors turned into user messages."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, ValidationError

from abonnement.config.yamlpos import Document, Path
from abonnement.errors import Problem

__all__ = [
    "SECTIONS",
    "config_file_schema",
    "did_you_mean",
    "location",
    "schema_problems",
    "section_schema",
    "section_validator",
]

# Section → the noun for one of its entries, in the order the docs present them.
SECTIONS: dict[str, str] = {
    "settings": "settings",
    "tax_rates": "tax rate",
    "products": "product",
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "quotes": "quote",
    "payment_links": "payment link",
    "subscriptions": "subscription",
}

_REQUIRED_RE = re.compile(r"^'(?P<key>.+)' is a required property")


@cache
def _raw_schema(name: str) -> dict[str, Any]:
    text = resources.files("abonnement.config").joinpath(f"schemas/{name}.schema.json").read_text()
    return json.loads(text)


def _inline(schema: Any) -> Any:
    """``schema`` with every ``$ref`` into the shared definitions replaced by the definition.

    Validators then never resolve references at run time (they dominated validation time), and
    a definition's ``x-expected`` travels with it into error messages.
    """
    if isinstance(schema, list):
        return [_inline(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref:
        target = _inline(_raw_schema("common")["$defs"][ref.rsplit("/", 1)[1]])
        siblings = {k: _inline(v) for k, v in schema.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _inline(v) for k, v in schema.items()}


def section_schema(section: str, extensions: Mapping[str, Mapping[str, Any]] = {}) -> dict:
    """The schema of ``section``; for settings, with plugin blocks (``"notifications.mailbox"``)."""
    schema = _raw_schema(section)
    if section != "settings" or not extensions:
        return schema
    schema = copy.deepcopy(schema)
    for dotted, block in extensions.items():
        node = schema
        *parents, name = dotted.split(".")
        for part in parents:
            node = node["properties"][part]
        node["properties"][name] = dict(block)
    return schema


def config_file_schema(extensions: Mapping[str, Mapping[str, Any]] = {}) -> dict[str, Any]:
    """One JSON Schema (draft 2020-12) for a whole config file: every section optional (a
    config may be split over files), the shared definitions once under ``$defs``, the plugin
    settings blocks in ``extensions`` included. What ``abonnement schema`` prints for editors;
    the loader checks each section with its own schema."""

    def local(node: Any) -> Any:
        if isinstance(node, list):
            return [local(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: local(v) for k, v in node.items() if k not in ("$schema", "$id")}
        ref = out.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            out["$ref"] = "#/$defs/" + ref.rsplit("/", 1)[1]
        return out

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://abonnement.dev/schemas/abonnement.schema.json",
        "title": "abonnement config file",
        "description": "A YAML file of an abonnement config directory: any of its sections.",
        "type": "object",
        "additionalProperties": False,
        "properties": {s: local(section_schema(s, extensions)) for s in SECTIONS},
        "$defs": local(_raw_schema("common")["$defs"]),
    }


class SectionValidator:
    """A compiled fast check, and jsonschema's detailed errors only when the check fails."""

    def __init__(self, schema: dict):
        inlined = _inline(schema)
        self._fast = fastjsonschema.compile(inlined)
        self._detailed = Draft202012Validator(
            inlined, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        try:
            self._fast(instance)
        except fastjsonschema.JsonSchemaException:
            yield from self._detailed.iter_errors(instance)


@cache
def _cached_validator(section: str) -> SectionValidator:
    return SectionValidator(_raw_schema(section))


def section_validator(
    section: str, extensions: Mapping[str, Mapping[str, Any]] = {}
) -> SectionValidator:
    if section == "settings" and extensions:
        return SectionValidator(section_schema(section, extensions))
    return _cached_validator(section)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def location(doc: Document, path: Path) -> str:
    """Words for where ``path`` is: "in product `storage` (tiers[1])"."""
    section, *rest = path
    if section == "settings":
        return f"in {_dotted(path)}"
    if not rest or not isinstance(rest[0], int):
        return f"in {section}"
    noun = SECTIONS.get(str(section), str(section))
    try:
        item = doc.data[section][rest[0]]
    except (KeyError, IndexError, TypeError):
        item = None
    ident = item.get("id") if isinstance(item, dict) else None
    label = f"{noun} `{ident}`" if isinstance(ident, str) else f"{noun} #{rest[0] + 1}"
    sub = _dotted(tuple(rest[1:]))
    return f"in {label}" + (f" ({sub})" if sub else "")


def show(value: object) -> str:
    """A short description of a YAML value, for "expected X, got Y"."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return "a mapping" if isinstance(value, dict) else "a list"


def _unknown_keys(
    doc: Document, path: Path, instance: object, schema: Mapping
) -> Iterator[Problem]:
    allowed = list(schema.get("properties", {}))
    for key in instance if isinstance(instance, dict) else ():
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed) or (
            f"expected one of: {', '.join(allowed)}" if allowed else None
        )
        plugin_blocks = (("settings", "payments"), ("settings", "notifications"),
                         ("settings", "taxes"))  # fmt: skip
        if path in plugin_blocks and not hint:
            hint = f"a plugin's block; is the plugin that reads `{path[1]}.{key}` installed?"
        where = location(doc, path)
        yield doc.problem((*path, key), f"unknown key `{key}` {where}", hint, key=True)


def _enum_values(schema: Mapping) -> list[str]:
    """Every ``enum`` choice of a schema, its ``anyOf``/``oneOf`` branches included."""
    values = [str(v) for v in schema.get("enum", ())]
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        values.extend(_enum_values(branch))
    return values


def _convert(doc: Document, base: Path, error: ValidationError) -> Iterator[Problem]:
    path = (*base, *error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    where = location(doc, path)
    kind = error.validator
    if kind == "additionalProperties":
        yield from _unknown_keys(doc, path, error.instance, schema)
        return
    if kind in ("oneOf", "anyOf"):
        # A branch that failed only on an unknown key says more than "expected …".
        unknown = [e for e in error.context or () if e.validator == "additionalProperties"]
        if unknown and isinstance(error.instance, dict):
            yield from _convert(doc, base, unknown[0])
            return
    if kind == "required":
        match = _REQUIRED_RE.match(error.message)
        key = match["key"] if match else error.message
        yield doc.problem(path, f"missing required key `{key}` {where}")
        return
    expected = schema.get("x-expected")
    if expected and kind in ("type", "pattern", "format", "const", "oneOf", "anyOf", "enum"):
        hint = None
        if isinstance(error.instance, (int, Decimal)) and "money" in expected:
            hint = "money is never a YAML number: quote it, with its currency"
        elif isinstance(error.instance, str):
            hint = did_you_mean(error.instance, _enum_values(schema))
        yield doc.problem(path, f"expected {expected} {where}, got {show(error.instance)}", hint)
        return
    if kind == "enum":
        choices = [str(v) for v in error.validator_value]
        hint = did_you_mean(str(error.instance), choices)
        message = f"{show(error.instance)} is not one of {', '.join(choices)} {where}"
        yield doc.problem(path, message, hint)
        return
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        article = "an" if wanted[0] in "aeiou" else "a"
        wanted = {"object": "mapping", "array": "list"}.get(wanted, wanted)
        yield doc.problem(path, f"expected {article} {wanted} {where}, got {show(error.instance)}")
        return
    yield doc.problem(path, f"{error.message} {where}")


def schema_problems(
    doc: Document, section: str, validator: SectionValidator
) -> tuple[list[Problem], set[int]]:
    """Problems of one file's ``section``, and the indexes of list entries that have any."""
    problems: list[Problem] = []
    bad: set[int] = set()
    for error in validator.iter_errors(doc.data[section]):
        problems.extend(_convert(doc, (section,), error))
        if error.absolute_path and isinstance(error.absolute_path[0], int):
            bad.add(error.absolute_path[0])
        elif section != "settings":
            bad.update(range(len(doc.data[section]) if isinstance(doc.data[section], list) else 0))
    return problems, bad
