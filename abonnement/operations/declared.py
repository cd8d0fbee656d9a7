"""Declared subscriptions: the config's ``subscriptions:`` made true in the database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from abonnement.operations.context import Context

__all__ = ["apply", "apply_declared"]


def apply_declared(ctx: Context, as_of: date) -> dict[str, list[str]]:
    """Create or update the declared subscriptions (by id) without delivering anything; running
    it twice changes nothing. Returns ``{"created", "updated", "unchanged"}`` id lists."""
    from abonnement.engine.events import numbered
    from abonnement.engine.purchase import from_declared
    from abonnement.engine.subscriptions import mrr_basis

    catalog = ctx.catalog
    wanted = [from_declared(d, catalog, as_of) for d in catalog.subscriptions.values()]
    store = ctx.storage
    existing = {s.id: s for s in store.subscriptions()} if wanted else {}
    created = [replace(s, event_seq=1) for s in wanted if s.id not in existing]
    changed = []
    for sub in wanted:
        old = existing.get(sub.id)
        if old is None:
            continue
        # What the config leaves open (an owner, a property) a workflow may have set: the
        # declaration overrides only what it says.
        sub = replace(sub, owner=sub.owner or old.owner,
                      properties={**old.properties, **sub.properties})  # fmt: skip
        if _definition(old) != _definition(sub):
            # the definition changes from the next cycle; billing state stays as it is
            changed.append(replace(
                old, items=sub.items, properties=sub.properties, owner=sub.owner,
                payment_method_id=sub.payment_method_id, event_seq=old.event_seq + 1,
            ))  # fmt: skip
    store.insert_subscriptions(created, "declared", [
        e for s in created for e in numbered(s.id, as_of, 0, ("subscription.created",
                                                              mrr_basis(s, ctx.recurring,
                                                                        as_of)))
    ])  # fmt: skip
    store.replace_items(changed, [
        e for s in changed for e in numbered(s.id, as_of, s.event_seq - 1,
                                             ("subscription.changed",
                                              mrr_basis(s, ctx.recurring, as_of)))
    ])  # fmt: skip
    changed_ids = {s.id for s in changed}
    return {
        "created": [s.id for s in created],
        "updated": sorted(changed_ids),
        "unchanged": [s.id for s in wanted if s.id in existing and s.id not in changed_ids],
    }


def apply(ctx: Context, as_of: date) -> dict[str, list[str]]:
    """``abonnement apply``: the declared subscriptions applied on ``as_of``, then what that
    set off delivered (change notices, triggers). Same result shape as ``apply_declared``."""
    from abonnement.operations.delivery import deliver_due

    result = apply_declared(ctx, as_of)
    deliver_due(ctx, as_of)
    return result


def _definition(sub: Any) -> tuple:
    return (sub.items, dict(sub.properties), sub.owner, sub.payment_method_id)
