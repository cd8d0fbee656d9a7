"""The plugin manager factory and the typed facade the engine calls hooks through."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from abonnement.config.loader import PluginNames
from abonnement.engine.events import Event
from abonnement.errors import PluginError
from abonnement.plugins import hookspecs
from abonnement.plugins.interfaces import (
    Notifier,
    Processor,
    Registry,
    RuleFunction,
    Storage,
    TaxProvider,
)

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "Plugins", "build_plugin_manager"]

ENTRY_POINT_GROUP = "abonnement"
DISABLE_ENV = "ABONNEMENT_DISABLE_PLUGINS"

# Built-ins, registered through the same hooks as third-party plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "abonnement.plugins.processors.test",
    "abonnement.plugins.processors.stripe",
    "abonnement.plugins.notifiers.mailbox",
    "abonnement.plugins.notifiers.console",
    "abonnement.plugins.notifiers.smtp",
    "abonnement.plugins.notifiers.webhook",
    "abonnement.plugins.storage",
)


_PLURALS = {
    "processor": "processors",
    "notifier": "notifiers",
    "tax provider": "tax_providers",
    "rule function": "rule_functions",
    "settings": "settings_schemas",
}


def _blocked(disabled: Iterable[str] | None) -> set[str]:
    if disabled is None:
        disabled = os.environ.get(DISABLE_ENV, "").split(",")
    return {name.strip() for name in disabled if name.strip()}


def build_plugin_manager(
    *, disabled: Iterable[str] | None = None, entry_points: bool = True
) -> pluggy.PluginManager:
    """Specs → block list (``ABONNEMENT_DISABLE_PLUGINS``) → entry points → defaults → check."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in _blocked(disabled):
        pm.set_blocked(name)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party package must not look like our bug
            raise PluginError(f"could not load a plugin from entry points: {exc}") from exc
    for module_name in DEFAULT_PLUGINS:
        if not pm.is_blocked(module_name):
            pm.register(importlib.import_module(module_name), name=module_name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin `{exc.plugin}` implements an unknown hook: {exc}") from exc
    return pm


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any]) -> dict:
    # Each implementation is called on its own so the registry can name the plugin behind
    # every entry, and a duplicate or a crash is reported against the right plugin.
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        registry.plugin = impl.plugin_name
        _guard(impl.plugin_name, hook_name, lambda impl=impl: impl.function(register=registry))
    return registry.items


def _guard(plugin: str, hook_name: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin `{plugin}` failed in {hook_name}: {exc!r}") from exc


@dataclass(frozen=True)
class Plugins:
    """What the installed plugins register, and the one door through which hooks are called."""

    pm: pluggy.PluginManager
    processors: Mapping[str, type[Processor]]
    notifiers: Mapping[str, type[Notifier]]
    tax_providers: Mapping[str, type[TaxProvider]]
    rule_functions: Mapping[str, RuleFunction]
    settings_schemas: Mapping[str, Mapping[str, Any]]
    origins: Mapping[str, Mapping[str, str]]  # kind → name → plugin

    @classmethod
    def load(cls, pm: pluggy.PluginManager | None = None) -> Plugins:
        pm = pm or build_plugin_manager()
        registries = {
            "processor": Registry[type[Processor]]("processor"),
            "notifier": Registry[type[Notifier]]("notifier"),
            "tax provider": Registry[type[TaxProvider]]("tax provider"),
            "rule function": Registry[RuleFunction]("rule function"),
        }
        hooks = {
            "processor": "abonnement_register_processors",
            "notifier": "abonnement_register_notifiers",
            "tax provider": "abonnement_register_tax_providers",
            "rule function": "abonnement_register_rule_functions",
        }
        for kind, registry in registries.items():
            _collect(pm, hooks[kind], registry)
        schemas: dict[str, Mapping[str, Any]] = {}
        schema_origin: dict[str, str] = {}
        for impl in pm.hook.abonnement_settings_schemas.get_hookimpls():
            found = _guard(impl.plugin_name, "abonnement_settings_schemas", impl.function) or {}
            for path, schema in found.items():
                parent = path.split(".")[0]
                if parent not in ("payments", "notifications") or path.count(".") != 1:
                    raise PluginError(
                        f"plugin `{impl.plugin_name}` contributes settings at `{path}`; "
                        "only payments.NAME or notifications.NAME may be extended"
                    )
                if path in schemas:
                    raise PluginError(
                        f"two plugins contribute settings `{path}`: "
                        f"`{schema_origin[path]}` and `{impl.plugin_name}`"
                    )
                schemas[path] = schema
                schema_origin[path] = impl.plugin_name
        return cls(
            pm=pm,
            processors=registries["processor"].items,
            notifiers=registries["notifier"].items,
            tax_providers=registries["tax provider"].items,
            rule_functions=registries["rule function"].items,
            settings_schemas=schemas,
            origins={
                **{kind: r.origins for kind, r in registries.items()},
                "settings": schema_origin,
            },
        )

    def names(self) -> PluginNames:
        """What config validation needs to know of the plugins."""
        return PluginNames(
            processors=tuple(self.processors),
            notifiers=tuple(self.notifiers),
            settings_schemas=self.settings_schemas,
            rule_functions=self.rule_functions,
            representable={name: cls.representable for name, cls in self.processors.items()},
        )

    def open_storage(self, url: str, *, migrate: bool = True) -> Storage:
        """Storage for ``url`` from the first plugin that opens its scheme; ``migrate=False``
        opens it as it is (``db upgrade`` then migrates it)."""
        storage = self.pm.hook.abonnement_open_storage(url=url, migrate=migrate)
        if storage is None:
            scheme = url.split(":", 1)[0]
            raise PluginError(f"no storage plugin opens `{scheme}` URLs")
        return storage

    def emit(self, event: Event) -> None:
        """Tell every event observer; a raise names the plugin."""
        for impl in self.pm.hook.abonnement_on_event.get_hookimpls():
            _guard(impl.plugin_name, "abonnement_on_event", lambda i=impl: i.function(event=event))

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with what it registers, for ``abonnement plugins``."""
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda p: p[0]):
            registers: dict[str, list[str]] = {}
            for kind, origins in self.origins.items():
                owned = sorted(n for n, origin in origins.items() if origin == name)
                if owned:
                    registers[_PLURALS[kind]] = owned
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
            dist = next((d for p, d in self.pm.list_plugin_distinfo() if p is plugin), None)
            rows.append(
                {
                    "name": name,
                    "builtin": name in DEFAULT_PLUGINS,
                    "distribution": f"{dist.project_name} {dist.version}" if dist else None,
                    "hooks": hooks,
                    "registers": registers,
                }
            )
        return rows
