"""Every hook of abonnement. Built-in plugins implement exactly these, like third-party ones.

A plugin is a module or object with functions decorated ``@hookimpl`` (from
``abonnement.plugins``), named like the specs below. Third-party packages register under the
``abonnement`` entry-point group. Every hook is called through pluggy with keyword arguments
only (``plugins.hookcalls.call_hook``), so ``wrapper=True`` implementations run around the others
and ``ABONNEMENT_TRACE_HOOKS=1`` logs each call on the ``abonnement.hooks`` logger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from abonnement.engine.events import Event
    from abonnement.plugins.interfaces import (
        Notifier,
        Processor,
        Registry,
        RuleFunction,
        Storage,
        TaxProvider,
        WebhookEvent,
    )

hookspec = pluggy.HookspecMarker("abonnement")


@hookspec
def abonnement_register_processors(register: Registry[type[Processor]]) -> None:
    """Register payment processors.

    Called once when the plugins are loaded. Call ``register(cls)`` for each ``Processor``
    subclass; ``cls.name`` is what ``settings.payments.processor`` refers to. Two processors
    with one name stop start-up with an error naming both plugins.
    """


@hookspec
def abonnement_register_notifiers(register: Registry[type[Notifier]]) -> None:
    """Register notifiers: channels that deliver receipts, reminders and notices.

    Called once when the plugins are loaded. Call ``register(cls)`` for each ``Notifier``
    subclass; ``settings.notifications.notifiers`` lists the names to use. Duplicate names are
    an error naming both plugins.
    """


@hookspec
def abonnement_register_tax_providers(register: Registry[type[TaxProvider]]) -> None:
    """Register tax providers for automatic tax by the buyer's location.

    Called once when the plugins are loaded. Call ``register(cls)`` for each ``TaxProvider``
    subclass; ``cls.name`` is what ``settings.taxes.provider`` refers to. Duplicate names are
    an error naming both plugins. Returns nothing.

    The configured provider is then built once per billing run, quote or checkout as
    ``cls(settings)`` (the account's ``Settings``) and asked
    ``rates(location=Location(country, region, postal_code), lines=[TaxLine(category,
    description, sku, amount), ...])`` once per invoice, with the taxable lines whose location
    and tax category the run has not asked about yet. It returns one sequence of ``TaxRate``
    per line, in order (empty: untaxed); each becomes a line tax adjustment named
    ``PROVIDER:ID`` with the rate's label, rounded like rule taxes. A raise stops the run with
    a ``PluginError`` naming the provider.
    """


@hookspec
def abonnement_register_rule_functions(register: Registry[RuleFunction]) -> None:
    """Add functions the rule language may call, with declared types.

    Called once when the plugins are loaded. Call ``register(RuleFunction(name, params,
    returns, implementation))``; the type checker uses ``params`` and ``returns`` (rule-language
    type names such as ``"string"``, ``"number"``, ``"money"``, ``"bool"``, ``"date"``). A name
    taken by a built-in function or another plugin is an error.
    """


@hookspec
def abonnement_settings_schemas() -> Mapping[str, Mapping[str, Any]] | None:
    """Contribute JSON Schemas for a plugin's own settings block.

    Called once when the plugins are loaded. Return a mapping from a dotted settings path to a
    draft 2020-12 schema, e.g. ``{"notifications.mailbox": {"type": "object", ...}}``; the
    parent must be ``payments``, ``notifications`` or ``taxes``. Without a contribution, a
    block under the plugin's name is an unknown key. Return None to contribute nothing.
    """


@hookspec(firstresult=True)
def abonnement_open_storage(url: str, migrate: bool) -> Storage | None:
    """Open storage for the database ``url``, or return None if its scheme is not yours.

    The object returned keeps the storage contract, ``engine.ports.Storage`` (also
    ``abonnement.plugins.interfaces.Storage``): every method the operations, the billing run
    and the outbox call, with the guarantees each one states (docs/plugins.md, "Storage
    plugins"). ``migrate``: bring a new database to the current schema (and refuse an
    outdated one); False when ``abonnement db upgrade`` opens it to migrate it explicitly.

    Called when a command needs the database. Stops at the first non-None result; the built-in
    SQLAlchemy storage is ``trylast`` so an installed plugin wins.
    """


@hookspec
def abonnement_on_event(event: Event) -> None:
    """Observe a domain event (``subscription.created``, ``payment.failed``…).

    Called once per event when it is delivered from the outbox, after the transaction that
    caused it committed; an event is delivered to observers at most once. Return nothing. A
    raise is reported with the plugin's name and the event stays pending for the next run.
    """


@hookspec(firstresult=True)
def abonnement_parse_webhook(
    processor: str, headers: Mapping[str, str], body: bytes, secret: str | None
) -> WebhookEvent | None:
    """Verify and read a payment processor's webhook (``POST /hooks/PROCESSOR``).

    Called by ``abonnement serve`` for each webhook request, with the processor name from the
    URL (implement it for your processors only: return None for another name), the request's
    headers (lower-case names) and its raw body, and the webhook secret
    (``ABONNEMENT_WEBHOOK_SECRET``, else the processor settings block's ``webhook_secret``, else
    None). Check the signature over the raw body (and its timestamp, so an old request cannot
    be replayed) before believing anything in it.

    Return a ``WebhookEvent`` for a genuine event, or None when the request is not signed
    with the secret or is malformed: it is refused with HTTP 400 and changes nothing. Stops at
    the first non-None result. abonnement then records the event's ``result`` for the charge
    with its ``idempotency_key`` exactly once (a settled bank debit, a charge that succeeded
    after a timeout, a failure), the way a billing run records a processor's answer; an event
    id seen before is refused.
    """
