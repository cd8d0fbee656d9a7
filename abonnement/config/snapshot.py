"""A config as the text of its files, so the config an ``apply`` made true can be kept in the
database and loaded again later (``plan`` bills the database under it, beside the config as
it is now)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abonnement.config.loader import Config, PluginNames
    from abonnement.engine.catalog import Catalog

__all__ = ["config_files", "files_version", "load_files"]


def config_files(root: Path, catalog: Catalog) -> dict[str, str]:
    """What a config is made of, relative path → text: its YAML files, its rule files and
    its message templates (rules name them). Files outside ``root`` are left out."""
    root = Path(root).resolve()
    paths = [  # the files ``loader.read_documents`` reads
        p for p in sorted(root.rglob("*"))
        if p.suffix in (".yaml", ".yml") and p.is_file()
        and not p.name.endswith((".test.yaml", ".test.yml"))
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ] + [Path(name) for name in catalog.rule_files]  # fmt: skip
    templates = root / "templates"
    if templates.is_dir():
        paths += sorted(p for p in templates.rglob("*") if p.is_file())
    out = {}
    for path in paths:
        try:
            name = path.resolve().relative_to(root).as_posix()
        except ValueError:
            continue
        out[name] = path.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


def files_version(files: Mapping[str, str]) -> str:
    """A digest of a config's files, rules included (``Catalog.version`` covers the YAML)."""
    digest = hashlib.sha256()
    for name, text in sorted(files.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def load_files(files: Mapping[str, str], plugins: PluginNames, root: Path) -> Config:
    """The config the files make, written to (empty) ``root`` and loaded from there."""
    from abonnement.config.loader import load

    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load(root, plugins)
