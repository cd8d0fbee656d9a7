"""The plugin manager factory and the typed facade the engine calls hooks through."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from abonnement.config.loader import PluginNames
from abonnement.engine.catalog import Settings, TaxRate
from abonnement.engine.events import Event
from abonnement.engine.taxes import AutomaticTax, Location, TaxLine
from abonnement.errors import AbonnementError, PluginError
from abonnement.plugins import hookspecs
from abonnement.plugins.hookcalls import call_hook, calling_plugin, short_repr, trace_hook_calls
from abonnement.plugins.interfaces import (
    Notifier,
    Processor,
    Registry,
    RuleFunction,
    Storage,
    TaxProvider,
    WebhookEvent,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "TRACE_ENV",
    "Plugins",
    "build_plugin_manager",
    "call_hook",
    "trace_hook_calls",
]

ENTRY_POINT_GROUP = "abonnement"
DISABLE_ENV = "ABONNEMENT_DISABLE_PLUGINS"
TRACE_ENV = "ABONNEMENT_TRACE_HOOKS"

# Built-ins, registered through the same hooks as third-party plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "abonnement.plugins.processors.test",
    "abonnement.plugins.processors.stripe",
    "abonnement.plugins.notifiers.mailbox",
    "abonnement.plugins.notifiers.console",
    "abonnement.plugins.notifiers.smtp",
    "abonnement.plugins.notifiers.webhook",
    "abonnement.plugins.storage",
    "abonnement.plugins.tax.table",
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
    *,
    disabled: Iterable[str] | None = None,
    entry_points: bool = True,
    trace: bool | None = None,
) -> pluggy.PluginManager:
    """Specs → block list (``ABONNEMENT_DISABLE_PLUGINS``) → entry points → defaults → check.

    ``trace`` (default: ``ABONNEMENT_TRACE_HOOKS=1`` in the environment) logs every hook call
    on the ``abonnement.hooks`` logger."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    if trace is None:
        trace = os.environ.get(TRACE_ENV, "").strip() not in ("", "0")
    if trace:
        trace_hook_calls(pm)
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
        kinds = {
            "processor": "abonnement_register_processors",
            "notifier": "abonnement_register_notifiers",
            "tax provider": "abonnement_register_tax_providers",
            "rule function": "abonnement_register_rule_functions",
        }
        registries: dict[str, Registry[Any]] = {}
        for kind, hook_name in kinds.items():
            registry = registries[kind] = Registry(
                kind, calling_plugin(getattr(pm.hook, hook_name))
            )
            call_hook(pm, hook_name, register=registry)
        schemas, schema_origin = _settings_schemas(pm)
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
            tax_providers=tuple(self.tax_providers),
            settings_schemas=self.settings_schemas,
            rule_functions=self.rule_functions,
            representable={name: cls.representable for name, cls in self.processors.items()},
            notifier_problems={name: cls.problems for name, cls in self.notifiers.items()},
        )

    def open_storage(self, url: str, *, migrate: bool = True) -> Storage:
        """Storage for ``url`` from the first plugin that opens its scheme; ``migrate=False``
        opens it as it is (``db upgrade`` then migrates it)."""
        storage = call_hook(self.pm, "abonnement_open_storage", url=url, migrate=migrate)
        if storage is None:
            scheme = url.split(":", 1)[0]
            raise PluginError(f"no storage plugin opens `{scheme}` URLs")
        return storage

    @property
    def observes_events(self) -> bool:
        """Whether any plugin implements ``abonnement_on_event`` (else events skip the call)."""
        return bool(self.pm.hook.abonnement_on_event.get_hookimpls())

    def emit(self, event: Event) -> None:
        """Tell every event observer; a raise names the plugin."""
        call_hook(self.pm, "abonnement_on_event", event=event)

    def parse_webhook(
        self, processor: str, headers: Mapping[str, str], body: bytes, secret: str | None
    ) -> WebhookEvent | None:
        """The verified event of a processor webhook, or None (unsigned, forged, malformed,
        or no plugin reads this processor's webhooks). A plugin that raises is named."""
        event = call_hook(self.pm, "abonnement_parse_webhook", processor=processor,
                          headers=headers, body=body, secret=secret)  # fmt: skip
        if event is not None and not isinstance(event, WebhookEvent):
            raise PluginError(f"the webhook parser for `{processor}` returned "
                              f"{short_repr(event)}, not a WebhookEvent")  # fmt: skip
        return event

    def automatic_tax(self, settings: Settings) -> AutomaticTax | None:
        """The provider ``settings.taxes.provider`` names, ready for one run (a billing run, a
        quote, a checkout): asked once per invoice, its answers remembered for the run. None
        when no provider is configured. A provider that raises, or answers out of shape, stops
        the run with a ``PluginError`` that names it."""
        name = settings.tax_provider
        if name is None:
            return None
        cls = self.tax_providers.get(name)
        plugin = self.origins.get("tax provider", {}).get(name, "?")
        if cls is None:
            raise PluginError(f"no tax provider plugin named `{name}`")
        who = f"tax provider `{name}` (plugin `{plugin}`)"
        try:
            provider = cls(settings)
        except AbonnementError:
            raise
        except Exception as exc:
            raise PluginError(f"{who} could not start: {exc!r}") from exc

        def ask(location: Location, lines: Sequence[TaxLine]) -> Sequence[Sequence[TaxRate]]:
            try:
                answer = provider.rates(location=location, lines=lines)
            except AbonnementError:
                raise
            except Exception as exc:
                raise PluginError(f"{who} failed for {_place(location)}: {exc!r}") from exc
            if not _well_formed(answer, len(lines)):
                raise PluginError(
                    f"{who} answered {short_repr(answer)} for {len(lines)} line(s); expected "
                    "one list of TaxRate per line"
                )
            return answer

        return AutomaticTax(name, ask)

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


_SETTINGS_PARENTS = ("payments", "notifications", "taxes")


def _settings_schemas(
    pm: pluggy.PluginManager,
) -> tuple[dict[str, Mapping[str, Any]], dict[str, str]]:
    """Every contributed settings schema by dotted path, and the plugin behind each.

    This hook returns its answer, and a list of answers does not say whose each one is; so
    each plugin is asked through a hook caller of its own (still through pluggy, with its own
    wrappers and tracing) to name the plugin behind a bad path or a clash."""
    hook_name = "abonnement_settings_schemas"
    everyone = {impl.plugin for impl in pm.hook.abonnement_settings_schemas.get_hookimpls()}
    schemas: dict[str, Mapping[str, Any]] = {}
    origin: dict[str, str] = {}
    for impl in pm.hook.abonnement_settings_schemas.get_hookimpls():
        if impl.wrapper or impl.hookwrapper:
            continue
        caller = pm.subset_hook_caller(hook_name, everyone - {impl.plugin})
        try:
            answers = caller()
        except AbonnementError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin `{impl.plugin_name}` failed in {hook_name}: {exc!r}"
            ) from exc
        for found in answers:
            for path, schema in (found or {}).items():
                parent = path.split(".")[0]
                if parent not in _SETTINGS_PARENTS or path.count(".") != 1:
                    raise PluginError(
                        f"plugin `{impl.plugin_name}` contributes settings at `{path}`; "
                        "only payments.NAME, notifications.NAME or taxes.NAME may be extended"
                    )
                if path in schemas:
                    raise PluginError(
                        f"two plugins contribute settings `{path}`: "
                        f"`{origin[path]}` and `{impl.plugin_name}`"
                    )
                schemas[path] = schema
                origin[path] = impl.plugin_name
    return schemas, origin


def _place(location: Location) -> str:
    return "/".join(p for p in (location.country, location.region, location.postal_code) if p)


def _well_formed(answer: object, count: int) -> bool:
    """One sequence of ``TaxRate`` per line, nothing else."""
    if not isinstance(answer, Sequence) or isinstance(answer, str) or len(answer) != count:
        return False
    return all(
        isinstance(rates, Sequence) and all(isinstance(r, TaxRate) for r in rates)
        for rates in answer
    )
