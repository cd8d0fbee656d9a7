"""The checked catalog of a config, kept between commands while its files do not change.

Loading and checking a config costs about 200 µs per declared subscription, every command,
though the files rarely change between two runs. A catalog that loaded without a problem is
kept in one file beside the database (``abonnement.db`` → ``abonnement.db.config-cache``;
for a database that is not a SQLite file, ``.abonnement-cache`` in the config directory,
which config loading skips as it skips every dotted path). It is used again only when its
key matches: a digest of the config's YAML files (paths and contents), the config
directory's own path, the package version and its config code, the Python version, and what
the installed plugins offer — and the rule files the settings' globs find must be the ones it
lists. Rule files are compiled on every load (they are few and cheap).

The cache is an optimisation and never a source of truth: a file that is missing, stale,
corrupt, of another version, or not this user's alone is ignored and written again. It is
written whole or not at all (a temporary file moved into place), mode 0600, as the database
next to it: it holds the config's contents.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import json
import logging
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO

from abonnement.private_files import write_private

if TYPE_CHECKING:
    from abonnement.config.loader import PluginNames
    from abonnement.engine.catalog import Catalog

__all__ = [
    "CACHE_SUFFIX",
    "cache_key",
    "cache_path",
    "declaration_hashes",
    "read_cached",
    "same_rule_files",
    "write_cached",
]

CACHE_SUFFIX = ".config-cache"
_DIRECTORY_CACHE = ".abonnement-cache"
_MAGIC = b"abonnement config cache 2\n"
# The catalog's maps of declarations (100,000 declared subscriptions and as many contacts) are
# pickled in parts of this many entries, each a pickle of its own: an unpickler keeps what it
# read until it is done (every object's state list too), which doubled the memory a cached
# catalog took while it loaded. The rest of the catalog is one pickle before them.
_PART = 2000
_SPLIT = ("subscriptions", "contacts", "companies", "deals", "quotes", "payment_links",
          "declared_at", "declared_hashes")  # fmt: skip
_log = logging.getLogger("abonnement.config")


def cache_path(config_dir: Path, database_url: str) -> Path | None:
    """Where the cache of ``config_dir``'s catalog lives for the database at ``database_url``:
    beside a SQLite file, else in the config directory; None for an in-memory database."""
    if database_url.startswith("sqlite"):
        _, _, rest = database_url.partition(":///")
        path = rest.split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path + CACHE_SUFFIX)
    return Path(config_dir) / _DIRECTORY_CACHE


def same_rule_files(root: Path, catalog: Catalog) -> bool:
    """Whether the settings' rule globs still find the rule files the cached catalog lists
    (a rule file added or removed changes no YAML file)."""
    import glob

    found: list[str] = []
    try:
        for pattern in catalog.settings.rules:
            if Path(pattern).is_absolute():
                matches = sorted(p for p in map(Path, glob.glob(pattern)) if p.is_file())
            else:
                matches = sorted(p for p in root.glob(pattern) if p.is_file())
            found.extend(str(p) for p in matches if str(p) not in found)
    except (OSError, ValueError):
        return False
    return tuple(found) == tuple(catalog.rule_files)


def same_logo(root: Path, catalog: Catalog) -> bool:
    """Whether the logo file ``settings.account_logo`` names is still the one the cached
    catalog embeds (a file the YAML names but no YAML file holds; a URL is not read)."""
    import base64

    settings = catalog.settings
    logo = settings.account_logo
    if not logo or logo.startswith(("https://", "http://")):
        return True
    try:
        data = (root / logo).read_bytes()
    except OSError:
        return False  # gone: the load says so
    embedded = (settings.account_logo_data or "").partition(";base64,")[2]
    return embedded == base64.b64encode(data).decode("ascii")


def _code_fingerprint() -> bytes:
    """The package version and the size and time of the code that builds a catalog: a
    catalog pickled by other code is not used."""
    from importlib import metadata

    import abonnement.config
    import abonnement.engine.catalog

    try:
        version = metadata.version("abonnement")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        version = "unknown"
    parts = [version, sys.version, str(pickle.HIGHEST_PROTOCOL)]
    folder = Path(abonnement.config.__file__).parent
    for path in [*sorted(folder.glob("*.py")), *sorted(folder.glob("schemas/*.json")),
                 Path(abonnement.engine.catalog.__file__)]:  # fmt: skip
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts).encode()


def _name(value: Callable[..., Any]) -> str:
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"


def _plugins_fingerprint(plugins: PluginNames) -> bytes:
    return json.dumps(
        {
            "processors": sorted(plugins.processors),
            "notifiers": sorted(plugins.notifiers),
            "tax_providers": sorted(plugins.tax_providers),
            "settings": plugins.settings_schemas,
            "functions": sorted(plugins.rule_functions),
            "representable": {k: _name(v) for k, v in plugins.representable.items()},
            "notifier_problems": {k: _name(v) for k, v in plugins.notifier_problems.items()},
        },
        sort_keys=True,
        default=str,
    ).encode()


def cache_key(root: Path, files: list[Path], plugins: PluginNames) -> str:
    """The digest a cached catalog must carry to stand for the config at ``root`` whose YAML
    files are ``files``."""
    digest = hashlib.sha256()
    digest.update(_code_fingerprint() + b"\0" + _plugins_fingerprint(plugins) + b"\0")
    digest.update(str(root.resolve()).encode() + b"\0")
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _proxy(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)


class _Pickler(pickle.Pickler):
    # the catalog's maps are read-only views (frozen_map), which pickle does not know
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[MappingProxyType] = lambda m: (_proxy, (dict(m),))


def _pickled(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def declaration_hashes(catalog: Catalog) -> dict[str, str]:
    """Declared subscription id → a digest of its declaration and of everything else the
    catalog holds (settings, products, contacts…: what ``apply`` derives a row from)."""
    from dataclasses import replace

    from abonnement.engine.catalog import EMPTY

    # rule_files are absolute paths and make no row: a copied config keeps its digests
    around = replace(catalog, subscriptions=EMPTY, declared_at=EMPTY, declared_hashes=EMPTY,
                     version="", rule_files=())  # fmt: skip
    world = hashlib.sha256(_pickled(around)).digest()
    return {
        sub_id: hashlib.sha256(world + _pickled(decl)).hexdigest()
        for sub_id, decl in catalog.subscriptions.items()
    }


def read_cached(path: Path | None, key: str) -> Catalog | None:
    """The catalog cached at ``path`` under ``key``, or None (missing, stale, unreadable,
    corrupt, or writable by others than its owner)."""
    if path is None:
        return None
    head = _MAGIC + key.encode() + b"\n"
    try:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
                return None  # another user could have written what pickle would run
            if handle.read(len(head)) != head:
                return None
            try:  # read as it is unpickled: the file's bytes are never all held at once
                return _unpickled(handle)
            except Exception:  # a corrupt cache is no cache (any error unpickling can raise)
                _log.debug("config cache %s unreadable: rebuilt", path)
                return None
    except OSError:
        return None


def _unpickled(stream: BinaryIO) -> Catalog | None:
    """The catalog ``_catalog_pickle`` wrote: its rest, then each split map's parts, every
    part read by an unpickler of its own (what one keeps is freed when its part is read)."""
    from dataclasses import replace

    from abonnement.engine.catalog import EMPTY, Catalog

    rest = pickle.Unpickler(stream).load()
    sizes = pickle.Unpickler(stream).load()
    if not isinstance(rest, Catalog) or not isinstance(sizes, dict):
        return None
    maps: dict[str, Any] = {}
    for name in _SPLIT:
        items: dict[str, Any] = {}
        for _ in range(sizes[name]):
            items.update(pickle.Unpickler(stream).load())
        maps[name] = MappingProxyType(items) if items else EMPTY
    return replace(rest, **maps)


def _catalog_pickle(catalog: Catalog, head: bytes = b"") -> bytes:
    """``head``, then ``catalog`` as ``_unpickled`` reads it."""
    from dataclasses import replace

    from abonnement.engine.catalog import EMPTY

    maps = {name: list(getattr(catalog, name).items()) for name in _SPLIT}
    buffer = io.BytesIO()
    buffer.write(head)
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        replace(catalog, **dict.fromkeys(_SPLIT, EMPTY))
    )
    sizes = {name: -(-len(items) // _PART) for name, items in maps.items()}
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(sizes)
    for items in maps.values():
        for at in range(0, len(items), _PART):
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(items[at : at + _PART])
    return buffer.getvalue()


def write_cached(path: Path | None, key: str, catalog: Catalog) -> None:
    """Keep ``catalog`` at ``path`` under ``key``; a cache that cannot be written is skipped."""
    if path is None:
        return
    try:
        write_private(path, _catalog_pickle(catalog, _MAGIC + key.encode() + b"\n"))
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        _log.debug("config cache %s not written: %s", path, exc)
