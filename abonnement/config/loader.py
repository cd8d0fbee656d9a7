"""Load a config directory: every YAML file, checked against the schemas, into a ``Catalog``."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abonnement.config.build import Entry, build_catalog
from abonnement.config.schemas import SECTIONS, did_you_mean, schema_problems, section_validator
from abonnement.config.yamlpos import Document, load_document
from abonnement.engine.catalog import Catalog
from abonnement.errors import ConfigError, Problem, YamlProblem
from abonnement.rules.ast import Call, Literal
from abonnement.rules.ruleset import RuleSet, build_ruleset
from abonnement.rules.types import BUILTIN_TEMPLATES, RuleEnv, Signature

if TYPE_CHECKING:
    from abonnement.engine.money import Money
    from abonnement.rules.types import RuleFunction

__all__ = [
    "MAX_FILE_BYTES",
    "Config",
    "PluginNames",
    "load",
    "load_config",
    "read_documents",
    "yaml_files",
]

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class PluginNames:
    """What the installed plugins offer, so settings and rules that name one can be checked."""

    processors: Collection[str] = ()
    notifiers: Collection[str] = ()
    tax_providers: Collection[str] = ()
    settings_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rule_functions: Mapping[str, RuleFunction] = field(default_factory=dict)
    # processor name → why it cannot charge an amount as written (None: it can)
    representable: Mapping[str, Callable[[Money], str | None]] = field(default_factory=dict)
    # notifier name → why its settings block must not be used (a password sent in the clear)
    notifier_problems: Mapping[str, Callable[[Mapping[str, Any]], list[str]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class Config:
    """A loaded config: the catalog and its compiled rules, both immutable."""

    catalog: Catalog
    rules: RuleSet
    warnings: tuple[Problem, ...] = ()  # what is valid but likely a mistake (`validate`)


def _decode(raw: bytes, name: str) -> str:
    if b"\x00" in raw:
        raise YamlProblem(Problem(name, 1, 1, "binary file, not YAML text", "remove it"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem(
            Problem(name, line, column, "file is not UTF-8 text", "save it as UTF-8")
        ) from None
    return text.removeprefix("\ufeff")


def yaml_files(root: Path) -> list[Path]:
    """The config's YAML files under ``root``, sorted: test cases and dotted paths aside."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in (".yaml", ".yml")
        and p.is_file()
        and not p.name.endswith((".test.yaml", ".test.yml"))
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def read_documents(root: Path) -> tuple[list[Document], list[Problem], str]:
    """Every ``*.yaml``/``*.yml`` under ``root``, sorted; unreadable files become problems."""
    if not root.is_dir():
        hint = "pass --config DIR or set ABONNEMENT_CONFIG; `abonnement init DIR` writes one"
        raise ConfigError([Problem(str(root), 1, 1, "config directory not found", hint)])
    files = yaml_files(root)
    if not files:
        raise ConfigError([Problem(str(root), 1, 1, "no YAML files in the config directory")])
    digest = hashlib.sha256()
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in files:
        name = str(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(Problem(name, 1, 1, f"file larger than {MAX_FILE_BYTES:,} bytes"))
            continue
        raw = path.read_bytes()
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + raw + b"\0")
        try:
            doc = load_document(_decode(raw, name), name)
        except YamlProblem as exc:
            problems.append(exc.problem)
            continue
        if doc.data is None:
            continue  # an empty file declares nothing
        if not isinstance(doc.data, dict):
            problems.append(
                doc.problem(
                    (),
                    "the top level of a config file must be a mapping of sections",
                    f"start with a section name: {', '.join(SECTIONS)}",
                )
            )
            continue
        documents.append(doc)
    return documents, problems, digest.hexdigest()[:16]


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """A load allocates a node and a value for every YAML node and keeps almost all of them:
    the cyclic collector's passes over that growing heap made loading superlinear (650 µs
    per subscription at 1,000, 900 at 10,000; PyYAML's own loaders suffer alike), while
    what a load leaves behind is freed by reference counting. It is off while loading and
    back as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_config(root: Path | str, plugins: PluginNames | None = None) -> Catalog:
    """Load, validate and build the catalog of the config at ``root`` (YAML only).

    Raises ``ConfigError`` with every problem found in one pass.
    """
    with _without_cycle_collector():
        catalog, problems = _load_catalog(Path(root), plugins or PluginNames())
    if problems or catalog is None:
        raise ConfigError(problems)
    return catalog


def load(
    root: Path | str, plugins: PluginNames | None = None, *, cache: Path | None = None
) -> Config:
    """The catalog and the compiled rules of the config at ``root``.

    Raises ``ConfigError`` with every problem of the YAML and the rule files in one pass.
    ``cache``: a file where the checked catalog is kept while the config's files do not
    change (``config.cache``); the rules are compiled every time.
    """
    with _without_cycle_collector():
        return _load(Path(root), plugins or PluginNames(), cache)


def _cached(root: Path, plugins: PluginNames, cache: Path) -> tuple[Catalog | None, str | None]:
    """The catalog kept in ``cache`` if it stands for the config as it is now, and the key
    a fresh one is kept under (None: the files cannot be read; the load will say why)."""
    from abonnement.config.cache import cache_key, read_cached, same_logo, same_rule_files

    try:
        key = cache_key(root, yaml_files(root), plugins) if root.is_dir() else None
    except OSError:
        return None, None
    catalog = read_cached(cache, key) if key else None
    if catalog is not None and not (same_rule_files(root, catalog) and same_logo(root, catalog)):
        catalog = None
    return catalog, key


def _load(root: Path, plugins: PluginNames, cache: Path | None) -> Config:
    catalog, key = _cached(root, plugins, cache) if cache is not None else (None, None)
    fresh = catalog is None
    problems: list[Problem] = []
    if catalog is None:
        catalog, problems = _load_catalog(root, plugins)
    if catalog is None:
        raise ConfigError(problems)
    if fresh and cache is not None and not problems:
        from dataclasses import replace

        from abonnement.config.cache import declaration_hashes

        catalog = replace(catalog, declared_hashes=declaration_hashes(catalog))
    sources = []
    for name in catalog.rule_files:
        try:
            sources.append((name, _decode(Path(name).read_bytes(), name)))
        except YamlProblem as exc:  # binary or not UTF-8
            problems.append(exc.problem)
    rules, rule_problems = build_ruleset(
        sources,
        rule_env(catalog, plugins, _templates(root)),
        {rate.id: rate.rate for rate in catalog.tax_rates.values()},
        {name: fn.implementation for name, fn in plugins.rule_functions.items()},
    )
    problems.extend(rule_problems)
    problems.extend(_uncharged_amounts(rules, catalog, plugins))
    problems.extend(_amounts_beyond_bounds(rules))
    if problems:
        raise ConfigError(problems)
    if fresh and key is not None:
        from abonnement.config.cache import cache_key, write_cached

        # kept only if the files did not change while they were read (an editor saving, a
        # checkout): else this catalog would stand for contents it was not built from
        if cache_key(root, yaml_files(root), plugins) == key:
            write_cached(cache, key, catalog)
    warnings = (*taxed_twice(rules, catalog), *invoices_without_pdf(root, catalog))
    return Config(catalog, rules, warnings)


def taxed_twice(rules: RuleSet, catalog: Catalog) -> list[Problem]:
    """Warnings for tax rules whose rate is one that items already carry as their own
    ``tax_rate`` (``tax_rate("ny-sales")``, or the same percentage written out): such a
    line would be taxed twice at that rate unless the rule's condition leaves it out."""
    carriers: dict[str, list[str]] = {}

    def carried(rate_id: str | None, where: str) -> None:
        if rate_id:
            carriers.setdefault(rate_id, []).append(where)

    for product in catalog.products.values():
        carried(product.tax_rate, f"product `{product.id}`")
    declared: tuple[tuple[str, Mapping[str, Any]], ...] = (
        ("subscription", catalog.subscriptions), ("quote", catalog.quotes),
        ("payment link", catalog.payment_links), ("deal", catalog.deals))  # fmt: skip
    for kind, records in declared:
        for record in records.values():
            for item in record.items:
                carried(item.tax_rate, f"{kind} `{record.id}`")
    warnings = []
    for rule in rules.pricing:
        stmt = rule.block.get("rate") if rule.kind == "tax" and rule.block else None
        if stmt is None:
            continue
        value = stmt.value
        if isinstance(value, Call) and value.name == "tax_rate" and value.args:
            named = value.args[0]
            ids = [named.value] if isinstance(named, Literal) else []
        elif isinstance(value, Literal) and value.type == "percent":
            ids = [r.id for r in catalog.tax_rates.values() if r.rate == value.value]
        else:
            continue
        for rate_id in ids:
            if rate_id in carriers:
                where = ", ".join(dict.fromkeys(carriers[rate_id]))
                warnings.append(Problem(
                    rule.block.file, value.line, value.column,  # type: ignore[union-attr]
                    f"tax `{rule.name}` applies the rate of tax rate `{rate_id}`, which items "
                    f"already carry as their own tax_rate ({where}): their lines are taxed "
                    "twice at that rate", "leave those lines out with `when`, or drop one",
                    severity="warning"))  # fmt: skip
    return warnings


def invoices_without_pdf(root: Path, catalog: Catalog) -> list[Problem]:
    """A warning when invoice e-mails are to carry the invoice's PDF and WeasyPrint (the
    ``pdf`` extra) is not installed: they go with the pay link only, which is still a valid
    config, but likely not what was meant."""
    from dataclasses import replace

    from abonnement.documents.invoice import pdf_installed

    settings = catalog.settings
    if not (settings.invoice_email and settings.invoice_attach_pdf) or pdf_installed():
        return []
    for path in yaml_files(root):
        try:
            doc = load_document(_decode(path.read_bytes(), str(path)), str(path))
        except (OSError, YamlProblem):
            continue
        if isinstance(doc.data, dict) and "settings" in doc.data:
            problem = doc.problem(
                ("settings", "notifications", "invoice"),
                "invoice e-mails will go without the invoice's PDF (only the pay link): "
                "WeasyPrint is not installed",
                "pip install 'abonnement[pdf]', or set "
                "`notifications: {invoice: {attach_pdf: false}}`",
            )
            return [replace(problem, severity="warning")]
    return []


def _uncharged_amounts(rules: RuleSet, catalog: Catalog, plugins: PluginNames) -> list[Problem]:
    """Fixed fee and discount amounts of the rules that the configured processor cannot
    charge as written (a KWD fee of 0.125 under a processor that takes hundredths)."""
    from abonnement.rules.ruleset import walk

    processor = catalog.settings.processor
    check = plugins.representable.get(processor)
    if check is None:
        return []
    problems = []
    for rule in rules.pricing:
        stmt = rule.block.get("amount") if rule.block and rule.kind != "tax" else None
        for node in walk(stmt.value) if stmt else ():
            problem = check(node.value) if getattr(node, "type", None) == "money" else None
            if problem:
                problems.append(Problem(rule.block.file, node.line, node.column, problem,  # type: ignore[union-attr]
                                        f"write an amount the `{processor}` processor can "
                                        "charge"))  # fmt: skip
    return problems


def _amounts_beyond_bounds(rules: RuleSet) -> list[Problem]:
    """Fixed fee and discount amounts of the rules beyond ``engine.bounds``."""
    from abonnement.engine.bounds import amount_problem
    from abonnement.rules.ruleset import walk

    problems = []
    for rule in rules.pricing:
        stmt = rule.block.get("amount") if rule.block and rule.kind != "tax" else None
        for node in walk(stmt.value) if stmt else ():
            problem = amount_problem(node.value) if getattr(node, "type", None) == "money" else None
            if problem:
                problems.append(Problem(rule.block.file, node.line, node.column, problem,  # type: ignore[union-attr]
                                        "see the bounds in docs/concepts.md"))  # fmt: skip
    return problems


def _templates(root: Path) -> tuple[str, ...]:
    folder = root / "templates"
    own = {p.name.split(".")[0] for p in folder.iterdir()} if folder.is_dir() else set()
    return tuple(sorted(set(BUILTIN_TEMPLATES) | own))


def rule_env(catalog: Catalog, plugins: PluginNames, templates: tuple[str, ...]) -> RuleEnv:
    """What the rule checker needs to know of the catalog and the plugins."""
    settings = catalog.settings
    return RuleEnv(
        currencies=settings.currencies,
        tax_rates={rate.id: rate.active for rate in catalog.tax_rates.values()},
        subscription_properties={p.name: p.type for p in settings.custom_properties},
        teams=tuple(settings.teams),
        templates=templates,
        functions={
            name: Signature(((tuple(fn.params), fn.returns),))
            for name, fn in plugins.rule_functions.items()
        },
    )


def _load_catalog(root: Path, plugins: PluginNames) -> tuple[Catalog | None, list[Problem]]:
    documents, problems, version = read_documents(root)
    entries: dict[str, list[Entry]] = {name: [] for name in SECTIONS}
    settings_docs: list[Document] = []
    for doc in documents:
        for section, value in doc.data.items():
            if section not in SECTIONS:
                hint = did_you_mean(section, list(SECTIONS)) or (
                    f"sections are: {', '.join(SECTIONS)}"
                )
                problems.append(
                    doc.problem((section,), f"unknown section `{section}`", hint, key=True)
                )
                continue
            if section == "settings":
                settings_docs.append(doc)
            validator = section_validator(section, plugins.settings_schemas)
            found, bad = schema_problems(doc, section, validator)
            problems.extend(found)
            if section == "settings":
                entries[section].append(Entry(doc, (section,), value, valid=not found))
            elif isinstance(value, list):
                entries[section].extend(
                    Entry(doc, (section, i), item, valid=i not in bad)
                    for i, item in enumerate(value)
                )
    if not settings_docs and not problems:
        first = documents[0].file if documents else str(root)
        problems.append(
            Problem(
                first,
                1,
                1,
                "no `settings` section in the config",
                "one file must hold `settings:` with at least account and currencies",
            )
        )
    for extra in settings_docs[1:]:
        first = settings_docs[0]
        m = first.mark(("settings",), key=True)
        problems.append(
            extra.problem(
                ("settings",),
                "`settings` is declared in more than one file",
                f"first declared at {first.file}:{m.line}",
                key=True,
            )
        )
    catalog, build_problems = build_catalog(root, entries, version, plugins)
    problems.extend(build_problems)
    return catalog, problems
