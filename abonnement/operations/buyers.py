"""Buyers: the config's contacts and those a payment-link page stored, seen as one mapping.

A buyer who checks out on a payment-link page is a contact too: matched by e-mail among the
config's contacts first, then among the stored ones, else stored as a new one. The config
stays the source of truth for the contacts it declares (its id or e-mail wins)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from abonnement.errors import InvalidInput

if TYPE_CHECKING:
    from abonnement.engine.catalog import Address, Contact
    from abonnement.operations.context import Context

__all__ = ["Buyer", "Contacts", "find_or_create"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Contacts(Mapping[str, "Contact"]):
    """The config's contacts, then the stored ones (read from storage on first need; a found
    one is remembered, a missing one asked again: a buyer may be stored meanwhile)."""

    def __init__(self, declared: Mapping[str, Contact], storage: Callable[[], Any]):
        self.declared, self._storage = declared, storage
        self._found: dict[str, Contact] = {}

    def __getitem__(self, contact_id: str) -> Contact:
        if contact_id in self.declared:
            return self.declared[contact_id]
        if not contact_id:  # a quote before the buyer is known: nothing to ask storage
            raise KeyError(contact_id)
        if contact_id not in self._found:
            stored = self._storage().stored_contact(contact_id)
            if stored is None:
                raise KeyError(contact_id)
            self._found[contact_id] = stored
        return self._found[contact_id]

    def __contains__(self, contact_id: object) -> bool:
        try:
            self[contact_id]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        yield from self.declared
        for contact in self._storage().stored_contacts():
            if contact.id not in self.declared:
                self._found[contact.id] = contact
                yield contact.id

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Buyer:
    """What a buyer typed on a payment-link page: name, e-mail, an optional billing address
    and the page's language. ``InvalidInput`` (with the field) for a missing name or a
    malformed e-mail."""

    def __init__(self, name: str, email: str, address: Address | None = None,
                 language: str | None = None):  # fmt: skip
        self.name, self.email = name.strip(), email.strip()
        self.address, self.language = address, language
        if not self.name:
            raise InvalidInput("enter your name", field="name")
        for field, value in (("name", self.name), ("email", self.email)):
            if any(ord(c) < 32 or ord(c) == 127 for c in value):  # NUL, CR/LF: headers, logs
                raise InvalidInput(f"the {field} holds a control character", field=field)
        if not _EMAIL.match(self.email):
            raise InvalidInput(f"{self.email!r} is not an e-mail address", field="email")


def find_or_create(ctx: Context, buyer: Buyer, on: date) -> Contact:
    """The contact for ``buyer``: the config's contact with that e-mail, else the stored one,
    else a new stored contact (id from the e-mail's local part, made unique)."""
    from abonnement.engine.catalog import Contact

    key = buyer.email.lower()
    declared = ctx.catalog.contacts
    own = declared.declared if isinstance(declared, Contacts) else declared
    for contact in own.values():
        if contact.email.lower() == key:
            return contact
    for _ in range(3):  # a concurrent checkout may store the same buyer, or take the id
        stored = ctx.storage.contact_by_email(buyer.email)
        if stored is not None:
            return stored
        contact = Contact(id=_free_id(ctx, buyer.email), name=buyer.name, email=buyer.email,
                          address=buyer.address, language=buyer.language)  # fmt: skip
        if ctx.storage.insert_contact(contact, on):
            return contact
    raise InvalidInput(f"cannot store the buyer {buyer.email}; try again", field="email")


def _free_id(ctx: Context, email: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", email.split("@", 1)[0].lower()).strip("-")[:40] or "buyer"
    candidate, n = base, 1
    while candidate in ctx.catalog.contacts:
        n += 1
        candidate = f"{base}-{n}"
    return candidate
