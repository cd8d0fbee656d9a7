"""Declared subscriptions: the config's ``subscriptions:`` made true in the database (``apply``),
and compared with it (what ``apply`` would do, which ``plan`` shows).

The config owns a declared subscription's definition (parties, currency, start, terms, items,
collection and invoice settings, the properties it writes); the database owns its state
(status, payments, pause and cancellation, methods saved later, what triggers set). A changed
definition takes effect like an edit (F20): from the next cycle, dated by the apply's date —
unless the next payment is inside the freeze window, when it waits for the cycle after it
(the config still says it, so every later apply or run applies it: it is never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.engine.status import SubscriptionStatus
from abonnement.errors import InvalidInput, InvalidState
from abonnement.operations.context import Context
from abonnement.operations.progress import Progress, counted

if TYPE_CHECKING:
    from abonnement.engine.catalog import Catalog, DeclaredSubscription
    from abonnement.engine.events import Event
    from abonnement.engine.items import Item
    from abonnement.engine.subscriptions import Subscription

__all__ = [
    "Applied",
    "Difference",
    "FieldChange",
    "apply",
    "apply_declared",
    "compare",
    "ownership_error",
]

_ENDED = (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED)


@dataclass(frozen=True)
class FieldChange:
    """One field of a declared subscription that the config changes: ``old`` → ``new``, as
    text a reviewer reads (``items[1].quantity``: ``1`` → ``3``)."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class Difference:
    """One subscription compared with the config.

    ``action``: ``create``, ``change``, ``unchanged``, ``no_longer_declared`` (stored as
    declared, no longer in the config) or ``deleted`` (declared, but its row was deleted
    while its invoices and history remain: left alone). ``effective`` is the first payment
    the new definition bills (None: none is scheduled, e.g. paused); ``waits_for`` the
    payment inside the freeze window that is still billed as it was."""

    id: str
    action: str
    changes: tuple[FieldChange, ...] = ()
    effective: date | None = None
    waits_for: date | None = None
    declared_at: str = ""
    refused: str = ""  # why no apply can make this change (``action`` "refused")
    subscription: Subscription | None = field(default=None, repr=False)
    events: tuple[Event, ...] = field(default=(), repr=False)
    # unchanged as known from the stored digest of its declaration (its row was not loaded)
    known: bool = field(default=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "action": self.action}
        if self.declared_at:
            out["declared_at"] = self.declared_at
        if self.action in ("create", "change"):
            out["from"] = self.effective.isoformat() if self.effective else None
        if self.waits_for:
            out["waits_for"] = self.waits_for.isoformat()
        if self.changes:
            out["changes"] = [{"field": c.field, "old": c.old, "new": c.new}
                              for c in self.changes]  # fmt: skip
        return out


@dataclass
class Applied:
    """What an apply did. ``deferred``: id → the payment inside the freeze window that is
    billed as it was (the change applies to the payment after it)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deferred: dict[str, date] = field(default_factory=dict)
    no_longer_declared: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # id → why no apply can make its change: left as it is, named, the run goes on (exit 1)
    refused: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "deferred": {k: v.isoformat() for k, v in sorted(self.deferred.items())},
            "no_longer_declared": self.no_longer_declared, "pruned": self.pruned,
            "deleted": self.deleted, "refused": dict(sorted(self.refused.items())),
        }  # fmt: skip

    def merge(self, later: Applied) -> None:
        """Fold in a later apply of the same run (one that applied deferred changes)."""
        self.created += later.created
        self.updated += [i for i in later.updated if i not in self.updated]
        self.unchanged = [i for i in self.unchanged if i not in later.updated]
        self.deferred = dict(later.deferred)
        self.pruned += later.pruned
        self.refused.update(later.refused)


def ownership_error(ctx: Context, sub_id: str) -> InvalidState:
    """The refusal of a definition change made outside the config."""
    where = ctx.catalog.declared_at.get(sub_id, "in the config")
    where = where if where == "in the config" else f"at {where}"
    return InvalidState(f"`{sub_id}` is declared {where}; change it there and run "
                        "`abonnement apply`")  # fmt: skip


def compare(
    ctx: Context,
    as_of: date,
    *,
    prorate: bool = False,
    strict: bool = True,
    progress: Progress | None = None,
) -> list[Difference]:
    """Each declared subscription (and each one no longer declared) compared with its row,
    as an apply on ``as_of`` would see it; writes nothing. ``prorate``: changes of lines
    settle the current period as ``edit --prorate`` does (a declaration's ``prorate: true``
    says the same for it alone). Raises ``InvalidState`` for a change no apply can make (the
    currency or frequency of a subscription that has billed) — with ``strict=False`` that
    declaration is ``refused`` instead (its message in ``waits_for``'s place: ``refused``)
    and the others go on — and ``InvalidInput`` for proration while settings turn it off.
    ``progress`` is told ``(declarations compared, declarations)``."""
    from abonnement.engine.bounds import term_problem
    from abonnement.engine.events import numbered
    from abonnement.engine.purchase import from_declared
    from abonnement.engine.subscriptions import mrr_basis

    catalog, store = ctx.catalog, ctx.storage
    declared = store.declared_ids()
    wanted_ids = list(catalog.subscriptions)
    # a row last made true to the same declaration in the same catalog, and whose definition
    # nothing else wrote since (that clears its digest), is unchanged: it is not even loaded
    hashes = catalog.declared_hashes
    stored = store.declared_hashes() if hashes else {}
    known = {i for i, h in stored.items() if hashes.get(i) == h}
    wanted_set = set(wanted_ids)
    existing = {s.id: s for s in store.subscriptions_named(
        [*(i for i in wanted_ids if i not in known), *(declared - wanted_set)])}  # fmt: skip
    history = store.with_history([i for i in wanted_ids if i not in existing and i not in known])
    out: list[Difference] = []
    problems: list[str] = []
    for decl in counted(catalog.subscriptions.values(), progress, len(catalog.subscriptions)):
        where = catalog.declared_at.get(decl.id, "")
        if decl.id in known:
            out.append(Difference(decl.id, "unchanged", declared_at=where, known=True))
            continue
        old = existing.get(decl.id)
        wanted = from_declared(decl, catalog, as_of)
        endless = term_problem(wanted)  # a term no calendar holds: never stored
        if endless and not strict:
            out.append(Difference(decl.id, "refused", declared_at=where, refused=endless))
            continue
        if endless:
            problems.append(f"`{decl.id}`: {endless}")
            continue
        if old is None:
            if decl.id in history:
                out.append(Difference(decl.id, "deleted", declared_at=where))
                continue
            sub = replace(wanted, event_seq=1)
            events = numbered(
                sub.id, as_of, 0, ("subscription.created", mrr_basis(sub, ctx.recurring, as_of))
            )
            out.append(Difference(decl.id, "create", effective=sub.anchor, declared_at=where,
                                  subscription=sub, events=events))  # fmt: skip
            continue
        new, changes, impossible = _redefined(old, decl, wanted, catalog)
        if impossible and not strict:  # left as it is; the others are applied and billed
            out.append(Difference(decl.id, "refused", declared_at=where,
                                  refused="; ".join(impossible)))  # fmt: skip
            continue
        problems += impossible
        if not changes:
            out.append(Difference(decl.id, "unchanged", declared_at=where))
            continue
        upcoming = old.next_payment_date
        freeze = catalog.settings.edit_freeze_days
        if (
            old.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SCHEDULED)
            and upcoming is not None
            # a payment not billed yet, even one already due (a run that missed its day),
            # is billed as it was announced: the change waits for the payment after it
            and (upcoming - as_of).days < freeze
        ):
            out.append(Difference(decl.id, "change", tuple(changes),
                                  old.date_of(old.next_index + 1), upcoming, where))  # fmt: skip
            continue
        if (prorate or decl.prorate) and new.items != old.items:
            if not catalog.settings.proration:
                raise InvalidInput("proration is off (settings.subscriptions.proration)")
            from abonnement.engine.edits import prorated
            from abonnement.operations.lifecycle import line_prices

            settled = prorated(old, new.items, as_of, rounding=catalog.settings.rounding,
                               line_prices=line_prices(ctx))  # fmt: skip
            new = replace(new, pending=new.pending + settled)
        named = sorted({c.field.split(".")[0].split("[")[0] for c in changes})
        what = {**mrr_basis(new, ctx.recurring, as_of), "changed": named}
        events = numbered(old.id, as_of, old.event_seq, ("subscription.changed", what))
        new = replace(new, event_seq=events[-1].seq)
        out.append(Difference(decl.id, "change", tuple(changes), new.next_payment_date,
                              declared_at=where, subscription=new, events=events))  # fmt: skip
    if problems:
        raise InvalidState("; ".join(problems))
    for sub_id in sorted(declared - wanted_set):
        sub = existing.get(sub_id)
        if sub is not None and sub.status not in _ENDED:
            out.append(Difference(sub_id, "no_longer_declared", subscription=sub))
    return out


def apply_declared(
    ctx: Context,
    as_of: date,
    *,
    prorate: bool = False,
    prune: bool = False,
    progress: Progress | None = None,
) -> Applied:
    """Make the declared subscriptions true on ``as_of`` without delivering anything:
    create what is new, change what differs (or say it waits, inside the freeze window),
    report what is no longer declared (``prune``: cancel those at period end). Running it
    twice changes nothing. The config applied is kept, for ``plan``. ``progress`` is told
    ``(declarations compared, declarations)``.

    Two applies at once (two processes, or an apply and a run) take turns
    (``Storage.exclusive``): the second compares with what the first made true, so each
    declared subscription is created once. ``Busy`` if the other holds on too long."""
    with ctx.storage.exclusive("applying"):
        return _apply_declared(ctx, as_of, prorate=prorate, prune=prune, progress=progress)


def _apply_declared(
    ctx: Context, as_of: date, *, prorate: bool, prune: bool, progress: Progress | None
) -> Applied:
    from abonnement.engine.subscriptions import cancel, scheduled

    found = compare(ctx, as_of, prorate=prorate, strict=False, progress=progress)
    store = ctx.storage
    result = Applied()
    # what is created is kept once: each new subscription as it is stored (scheduled) and
    # its events, its difference without them (100,000 at a first apply)
    lead = ctx.catalog.settings.reminder_lead
    created: list[Subscription] = []
    created_events: list[Event] = []
    for i, d in enumerate(found):
        if d.action == "create" and d.subscription is not None:
            created.append(scheduled(d.subscription, lead))
            created_events.extend(d.events)
            found[i] = replace(d, subscription=None, events=())
    changes = [d for d in found if d.action == "change" and d.waits_for is None]
    store.insert_subscriptions(created, "declared", created_events)
    del created, created_events
    store.replace_items(ctx.scheduled([d.subscription for d in changes]),
                        [e for d in changes for e in d.events])  # fmt: skip
    declared = store.declared_ids()
    store.mark_declared([d.id for d in found if d.action in ("change", "unchanged")
                         and d.id not in declared])  # fmt: skip
    for d in found:
        if d.action == "create":
            result.created.append(d.id)
        elif d.action == "change" and d.waits_for is not None:
            result.deferred[d.id] = d.waits_for
        elif d.action == "change":
            result.updated.append(d.id)
        elif d.action == "unchanged":
            result.unchanged.append(d.id)
        elif d.action == "deleted":
            result.deleted.append(d.id)
        elif d.action == "refused":
            result.refused[d.id] = f"{d.declared_at}: {d.refused}" if d.declared_at else d.refused
        elif d.action == "no_longer_declared":
            result.no_longer_declared.append(d.id)
            if prune and d.subscription is not None and d.subscription.cancel_on is None:
                store.change(d.id, lambda sub: cancel(sub, as_of, at_period_end=True))
                result.pruned.append(d.id)
    result.updated.sort()
    # what is now as declared, for the next apply's comparison (written after the rows: a
    # crash between leaves no digest, and the next apply compares in full)
    made_true = {*result.created, *result.updated, *result.unchanged}
    hashes = ctx.catalog.declared_hashes
    recorded = [d.id for d in found if d.id in made_true and d.id in hashes and not d.known]
    store.set_declared_hashes({sub_id: hashes[sub_id] for sub_id in recorded})
    from abonnement.config.snapshot import config_files, files_version

    files = config_files(ctx.config_dir, ctx.catalog)
    store.record_config(files_version(files), as_of, files)
    return result


def apply(
    ctx: Context,
    as_of: date,
    *,
    prorate: bool = False,
    prune: bool = False,
    progress: Progress | None = None,
) -> Applied:
    """``abonnement apply``: the declared subscriptions applied on ``as_of``, then what that
    set off delivered (change notices, triggers). ``progress``: as ``apply_declared``."""
    from abonnement.operations.delivery import deliver_due

    result = apply_declared(ctx, as_of, prorate=prorate, prune=prune, progress=progress)
    # an apply is a step of the database's timeline: a later `run --until` applies from here
    # (so a change this apply said waits, still waits)
    ctx.storage.advance_timeline(as_of)
    deliver_due(ctx, as_of)
    return result


# -- one subscription: its row redefined by its declaration ---------------------------------


def _redefined(
    old: Subscription, decl: DeclaredSubscription, wanted: Subscription, catalog: Catalog
) -> tuple[Subscription, list[FieldChange], list[str]]:
    """``old`` with the definition ``decl`` gives it (``wanted``: the declaration as if
    created now), the fields that change, and the changes no apply can make."""
    from abonnement.engine.schedule import OnDate

    changes: list[FieldChange] = []
    impossible: list[str] = []
    new: dict[str, Any] = {}
    started = old.next_index > 0

    def put(name: str, label: str, value: Any) -> None:
        if getattr(old, name) != value:
            new[name] = value
            show = _terms if name == "payments" else _text
            changes.append(FieldChange(label, show(getattr(old, name)), show(value)))

    for name, label in (("currency", "currency"), ("frequency", "frequency")):
        if getattr(old, name) != getattr(wanted, name):
            if started:
                impossible.append(
                    f"`{old.id}` has billed in {_text(getattr(old, name))}: its {label} does "
                    "not change; declare a new subscription (a new id) and remove this one"
                )
            else:
                put(name, label, getattr(wanted, name))
    if isinstance(decl.start, OnDate) and wanted.anchor != old.anchor:
        if started:
            impossible.append(f"`{old.id}` started on {old.anchor}: its start does not move "
                              f"to {wanted.anchor}; declare a new subscription")  # fmt: skip
        else:
            put("anchor", "start", wanted.anchor)
    items = tuple(_as_stored(i) for i in wanted.items)
    if items != old.items:
        new["items"] = items
        changes += _item_changes(old.items, items)
    for name, label in (
        ("contact_id", "contact"), ("company_id", "company"),
        ("billing_contact_id", "billing_contact"), ("payments", "terms"),
        ("payment_terms", "collection.payment_terms"), ("invoice_creation", "invoice_creation"),
        ("deals", "deals"),
    ):  # fmt: skip
        put(name, label, getattr(wanted, name))
    if wanted.payment_method_id != old.payment_method_id:
        put("payment_method_id", "collection.payment_method", wanted.payment_method_id)
        new.update(payment_token=wanted.payment_token, payment_type=wanted.payment_type)
    if not _same_mode(old, wanted, catalog):
        put("collection_mode", "collection.mode", wanted.collection_mode)
        if wanted.payment_token is not None:
            new.update(payment_token=wanted.payment_token, payment_type=wanted.payment_type)
    if dict(old.invoice_settings) != dict(wanted.invoice_settings):
        new["invoice_settings"] = wanted.invoice_settings
        for key in sorted(set(old.invoice_settings) | set(wanted.invoice_settings)):
            was, now = old.invoice_settings.get(key), wanted.invoice_settings.get(key)
            if _plain(was) != _plain(now):
                changes.append(FieldChange(f"invoice.{key}", _text(was), _text(now)))
    # only what the declaration writes: a property a trigger set stays the database's
    written = {k: v for k, v in decl.properties.items() if old.properties.get(k) != v}
    if written:
        new["properties"] = {**old.properties, **decl.properties}
        changes += [FieldChange(f"properties.{k}", _text(old.properties.get(k)), _text(v))
                    for k, v in sorted(written.items())]  # fmt: skip
    if decl.owner is not None:
        put("owner", "owner", decl.owner)
    return replace(old, **new), changes, impossible


def _same_mode(old: Subscription, wanted: Subscription, catalog: Catalog) -> bool:
    """Whether the stored collection mode is what the declared one has become: a first
    invoice paid turns ``first_invoice`` into ``automatic``, and a method the buyer saved
    later (an update link) makes a manual subscription automatic — state, not definition."""
    if old.collection_mode == wanted.collection_mode:
        return True
    if old.collection_mode != "automatic":
        return False
    if wanted.collection_mode == "first_invoice":
        return True
    declared_tokens = {m.token for c in catalog.contacts.values() for m in c.payment_methods}
    return old.payment_token is not None and old.payment_token not in declared_tokens


def _as_stored(item: Item) -> Item:
    """An item as storage keeps it: a subscription's start and terms are its own, not its
    lines' (a stored line comes back with the defaults)."""
    from abonnement.engine.catalog import AUTO_RENEW
    from abonnement.engine.schedule import AtPurchase

    return replace(item, terms=AUTO_RENEW, start=AtPurchase())


_ITEM_FIELDS = ("product_id", "name", "sku", "description", "quantity", "unit_price",
                "unit_discount", "frequency", "tax_rate", "taxable", "tax_inclusive",
                "category", "pricing", "tiers")  # fmt: skip


def _item_changes(old: tuple[Item, ...], new: tuple[Item, ...]) -> list[FieldChange]:
    out = []
    for n in range(max(len(old), len(new))):
        label = f"items[{n + 1}]"
        if n >= len(old):
            out.append(FieldChange(label, "—", _line(new[n])))
        elif n >= len(new):
            out.append(FieldChange(label, _line(old[n]), "—"))
        else:
            out += [FieldChange(f"{label}.{name}", _text(getattr(old[n], name)),
                                _text(getattr(new[n], name)))
                    for name in _ITEM_FIELDS
                    if getattr(old[n], name) != getattr(new[n], name)]  # fmt: skip
    return out


def _line(item: Item) -> str:
    text = f"{item.product_id or item.name} × {item.quantity} at {_text(item.unit_price)}"
    return text + (f" less {item.unit_discount}" if item.unit_discount else "")


def _terms(payments: int | None) -> str:
    return "auto_renew" if payments is None else f"{payments} payments"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _text(value: Any) -> str:
    """A field's value as a reviewer reads it."""
    from enum import Enum

    from abonnement.engine.money import Money
    from abonnement.engine.schedule import Frequency

    if value is None:
        return "—"
    if isinstance(value, Money):
        return f"{value.format_amount()} {value.currency}"
    if isinstance(value, Frequency):
        return value.name
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if hasattr(value, "__dataclass_fields__"):
        return "{" + ", ".join(f"{f.name}: {_text(getattr(value, f.name))}"
                               for f in fields(value)) + "}"  # fmt: skip
    return str(value)
