"""What the server keeps: buyers a payment-link page created (contacts beside the config's),
HTTP API keys (hashed), the first answers to idempotent API writes, and the processor webhook
events already recorded."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from abonnement.engine.catalog import Address, Contact
from abonnement.errors import AlreadyExists
from abonnement.plugins.storage import tables as t
from abonnement.plugins.storage.database import Database

__all__ = ["ServerStore"]

_C, _K, _D, _W = t.buyers.c, t.api_keys.c, t.idempotency_keys.c, t.webhook_events.c


def _contact(row: Any) -> Contact:
    address = Address(**row.address) if row.address else None
    return Contact(id=row.id, name=row.name, email=row.email, address=address,
                   language=row.language)  # fmt: skip


class ServerStore:
    """The server's tables of one ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    # -- buyers -----------------------------------------------------------------------------
    def stored_contact(self, contact_id: str) -> Contact | None:
        """A buyer stored by a checkout page, or None."""
        with self.db.tx() as conn:
            row = conn.execute(select(t.buyers).where(_C.id == contact_id)).first()
        return _contact(row) if row else None

    def stored_contacts(self) -> list[Contact]:
        """Every stored buyer, in id order."""
        with self.db.tx() as conn:
            return [_contact(r) for r in conn.execute(select(t.buyers).order_by(_C.id))]

    def contact_by_email(self, email: str) -> Contact | None:
        """The stored buyer with this e-mail address (compared without case), or None."""
        with self.db.tx() as conn:
            row = conn.execute(
                select(t.buyers).where(_C.email_key == email.strip().lower())
            ).first()
        return _contact(row) if row else None

    def insert_contact(self, contact: Contact, on: date) -> bool:
        """Store a new buyer; False when its id or e-mail is taken (a concurrent checkout
        stored it first)."""
        address = asdict(contact.address) if contact.address else None
        try:
            with self.db.tx() as conn:
                conn.execute(insert(t.buyers).values(
                    id=contact.id, name=contact.name, email=contact.email,
                    email_key=contact.email.strip().lower(), address=address,
                    language=contact.language, created_on=on,
                ))  # fmt: skip
        except IntegrityError:
            return False
        return True

    # -- API keys ---------------------------------------------------------------------------
    def add_api_key(self, name: str, digest: str, prefix: str, on: date) -> None:
        """Store a key by its digest; ``AlreadyExists`` when ``name`` is a live key (a
        revoked one's name is taken over)."""
        with self.db.tx() as conn:
            row = conn.execute(select(_K.revoked_on).where(_K.name == name)).first()
            if row is not None and row.revoked_on is None:
                raise AlreadyExists(f"API key `{name}` exists; revoke it first")
            if row is not None:
                conn.execute(delete(t.api_keys).where(_K.name == name))
            conn.execute(insert(t.api_keys).values(name=name, digest=digest, prefix=prefix,
                                                   created_on=on))  # fmt: skip

    def api_keys(self) -> list[dict[str, Any]]:
        """Every key: ``{"name", "prefix", "created_on", "revoked_on"}``, by name."""
        query = select(_K.name, _K.prefix, _K.created_on, _K.revoked_on).order_by(_K.name)
        with self.db.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def revoke_api_key(self, name: str, on: date) -> bool:
        """Revoke a live key; False when there is none of that name."""
        with self.db.tx() as conn:
            done = conn.execute(update(t.api_keys)
                                .where(_K.name == name, _K.revoked_on.is_(None))
                                .values(revoked_on=on))  # fmt: skip
        return bool(done.rowcount)

    def api_key_named(self, digest: str) -> str | None:
        """The name of the live key with this digest, or None."""
        query = select(_K.name).where(_K.digest == digest, _K.revoked_on.is_(None))
        with self.db.tx() as conn:
            return conn.execute(query).scalar()

    # -- idempotent API writes --------------------------------------------------------------
    def claim_idempotency_key(
        self, api_key: str, key: str, request: str, on: date
    ) -> dict[str, Any] | None:
        """Claim ``key`` for a request with digest ``request``: None when it is new (the
        caller runs the request, then ``answer_idempotency_key``), else the row already there:
        ``{"request", "status", "response"}`` (``status`` None while that one runs)."""
        try:
            with self.db.tx() as conn:
                conn.execute(insert(t.idempotency_keys).values(
                    api_key=api_key, key=key, request=request, created_on=on))  # fmt: skip
            return None
        except IntegrityError:
            pass
        query = select(_D.request, _D.status, _D.response).where(
            _D.api_key == api_key, _D.key == key
        )
        with self.db.tx() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def answer_idempotency_key(self, api_key: str, key: str, status: int, response: str) -> None:
        """Keep the first answer to the request that claimed ``key``."""
        with self.db.tx() as conn:
            conn.execute(update(t.idempotency_keys)
                         .where(_D.api_key == api_key, _D.key == key)
                         .values(status=status, response=response))  # fmt: skip

    def release_idempotency_key(self, api_key: str, key: str) -> None:
        """Forget a claim whose request crashed: the client may send it again."""
        with self.db.tx() as conn:
            conn.execute(delete(t.idempotency_keys)
                         .where(_D.api_key == api_key, _D.key == key))  # fmt: skip

    # -- buyer links ------------------------------------------------------------------------
    def link_used(self, digest: str) -> bool:
        """Whether the buyer link whose payload has SHA-256 ``digest`` was used
        (``use_link``)."""
        query = select(t.used_links.c.digest).where(t.used_links.c.digest == digest)
        with self.db.tx() as conn:
            return conn.execute(query).first() is not None

    # -- processor webhooks -----------------------------------------------------------------
    def webhook_received(self, processor: str, event_id: str) -> bool:
        """Whether the event was recorded already."""
        query = select(_W.event_id).where(_W.processor == processor, _W.event_id == event_id)
        with self.db.tx() as conn:
            return conn.execute(query).first() is not None

    def record_webhook(self, processor: str, event_id: str, kind: str, on: date) -> bool:
        """Note the event as recorded; False when it was already (a concurrent delivery)."""
        try:
            with self.db.tx() as conn:
                conn.execute(insert(t.webhook_events).values(
                    processor=processor, event_id=event_id, type=kind, received_on=on))  # fmt: skip
        except IntegrityError:
            return False
        return True
