"""What a plugin provides: small base classes, each with a ``name`` settings refer to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any, ClassVar, Generic, TypeVar

from abonnement.engine.catalog import Contact, Settings, TaxRate
from abonnement.engine.collection import ChargeResult
from abonnement.engine.money import Money
from abonnement.engine.ports import Storage  # the storage contract, for storage plugins
from abonnement.engine.taxes import Location, TaxLine
from abonnement.errors import PluginError, ProcessorTimeout
from abonnement.rules.types import RuleFunction

__all__ = [
    "Attachment",
    "ChargeResult",
    "Dispute",
    "Location",
    "Message",
    "Notifier",
    "Processor",
    "ProcessorTimeout",
    "Registry",
    "RuleFunction",
    "Storage",
    "TaxLine",
    "TaxProvider",
    "TaxRate",
    "WebhookEvent",
]


class Processor(ABC):
    """A payment processor. ``settings.payments.processor`` names one by ``name``.

    Constructed with the plugin's own settings block (``settings.payments.NAME``) plus
    ``config_dir`` (what relative paths of its settings are relative to), ``data_dir``: a
    folder where it may keep files of the database's (the SQLite database's folder, else the
    config folder), and ``storage``: the project's storage, which keeps what a processor
    needs across processes and crashes when it implements ``engine.ports.ProcessorStore``.

    Every idempotency key it is given starts with the database's instance id
    (``instance/INV-00001/attempt-1``): two databases never send it the same key. A charge or
    lookup may fail any way (a timeout, a refused connection, a server error): the billing
    run leaves that attempt pending and asks about it by key on the next run.
    """

    name: ClassVar[str]

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings

    @classmethod
    def representable(cls, money: Money) -> str | None:
        """Why this processor cannot charge ``money`` exactly as written, or None if it can.

        ``abonnement validate`` asks it about every price charged as written (product and
        custom line prices, stair-step prices, minimum charges, fixed fee and discount
        amounts), so a price the processor cannot take is refused before any billing.
        Default: the currency's ISO 4217 minor unit (USD cents, whole JPY, KWD thousandths).
        A processor with its own table overrides this and refuses such amounts in ``charge``
        and ``refund`` with the failure code ``amount_not_representable``."""
        if money.is_rounded():
            return None
        return (f"{money} has more decimals than {money.currency} has "
                f"({money.minor_unit})")  # fmt: skip

    @abstractmethod
    def charge(self, *, amount: Money, token: str, idempotency_key: str, on: date) -> ChargeResult:
        """Charge ``amount`` to the saved method ``token`` on ``on``. The same key never
        charges twice: a repeat returns the first outcome. May raise ``ProcessorTimeout``."""

    @abstractmethod
    def lookup(self, *, idempotency_key: str, on: date) -> ChargeResult | None:
        """The outcome of an earlier charge with this key as of ``on`` (a bank debit may have
        settled since), or None if the processor never saw the key."""

    def attach(self, *, contact: Contact, token: str, on: date) -> str:
        """Make ``token`` — what a buyer's page or ``--card`` gave for ``contact`` — a method
        that can be charged again, and return the token to store and charge. Called before
        a checkout, an online payment or a payment-method update charges it. Default: the
        token as it is. May raise ``PaymentDeclined`` or ``InvalidInput`` (field ``card``)."""
        return token

    def refund(
        self, *, charge_key: str, reference: str | None, amount: Money, idempotency_key: str,
        on: date,
    ) -> ChargeResult:  # fmt: skip
        """Give back ``amount`` of the charge made with ``charge_key``; the same
        ``idempotency_key`` never refunds twice. Processors that cannot refund say so."""
        raise PluginError(f"the {self.name} processor does not support refunds")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A processor's webhook event, its signature verified (``abonnement_parse_webhook``).

    ``id``: the processor's event id (an event recorded once is refused the second time);
    ``type``: the processor's name for it (``charge.succeeded``); ``idempotency_key``: the key
    abonnement charged with (``INVOICE/attempt-N``, a checkout's key), or None when the event is
    not about one of our charges; ``result``: what the processor now says about that charge,
    or None for an event abonnement does not act on (recorded, and otherwise ignored);
    ``dispute``: the charge is contested (recorded once, as a ``payment.disputed`` event)."""

    id: str
    type: str
    idempotency_key: str | None = None
    result: ChargeResult | None = None
    dispute: Dispute | None = None  # the buyer's bank contests the charge of idempotency_key


@dataclass(frozen=True, slots=True)
class Dispute:
    """A dispute (chargeback) the processor reports about the charge of a ``WebhookEvent``'s
    ``idempotency_key``: its id (recorded once), the contested amount as a decimal string in
    the charge's currency (None: the whole charge) and the bank's reason."""

    id: str
    amount: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message (an invoice's PDF): its name, MIME type and content."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, already rendered. ``attachments`` go with an e-mail (an invoice's
    PDF); a channel that is not e-mail leaves them out (a webhook carries the link)."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    kind: str = "notice"
    key: str = ""  # de-duplication key: one delivery per key and channel
    data: Mapping[str, Any] = field(default_factory=dict)  # the event behind it, for webhooks
    attachments: tuple[Attachment, ...] = ()

    def as_email(self) -> EmailMessage:
        """This message as an e-mail: To, Subject, the text and (if any) the HTML part, and
        the attachments (the whole then ``multipart/mixed``)."""
        email = EmailMessage()
        email["To"] = ", ".join(self.to)
        email["Subject"] = self.subject
        email.set_content(self.text)
        if self.html:
            email.add_alternative(self.html, subtype="html")
        for attachment in self.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            email.add_attachment(attachment.data, maintype=maintype,
                                 subtype=subtype or "octet-stream",
                                 filename=attachment.filename)  # fmt: skip
        return email


class Notifier(ABC):
    """Delivers messages (e-mail, webhook…). ``settings.notifications.notifiers`` names them."""

    name: ClassVar[str]

    def __init__(self, settings: Mapping[str, Any]):
        """``settings``: the notifier's block (``notifications.NAME``) plus ``config_dir``.
        Refuses (``PluginError``) settings ``problems`` finds: a notifier that would leak a
        secret never starts."""
        found = self.problems(settings)
        if found:
            raise PluginError(f"the {self.name} notifier: " + "; ".join(found))
        self.settings = settings

    @classmethod
    def problems(cls, settings: Mapping[str, Any]) -> list[str]:
        """Why these settings must not be used (e.g. a password sent without TLS), or an
        empty list. ``abonnement validate`` reports them against the notifier's settings
        block; construction refuses them. The config alone decides: a secret missing from the
        environment is for ``__init__`` to refuse (``validate`` runs where secrets may not
        be). Default: none."""
        return []

    @abstractmethod
    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise; a raise leaves it for a retry on the next run."""

    def send_many(self, messages: Sequence[Message]) -> Iterator[Exception | None]:
        """Deliver several messages, yielding for each, in order and as soon as it is known,
        None when it was sent or the exception its sending raised (that one is retried
        later). The outbox hands each channel its messages this way, a batch at a time, and
        records every outcome it was given even when the batch stops half-way. Default:
        ``send`` one by one; a notifier that can do better (one connection, one flush to
        disk) overrides it."""
        for message in messages:
            try:
                self.send(message)
            except Exception as exc:  # whatever a channel raises: retried later
                yield exc
            else:
                yield None


class TaxProvider(ABC):
    """Finds tax rates by the buyer's location (automatic tax, F10).

    ``settings.taxes.provider`` names one by ``name``. Built once per billing run, quote or
    checkout with the account's settings (its own block, if it contributes a schema for
    ``taxes.NAME``, is ``settings.plugin_settings["taxes.NAME"]``)."""

    name: ClassVar[str]

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    def rates(self, *, location: Location, lines: Sequence[TaxLine]) -> Sequence[Sequence[TaxRate]]:
        """The rates for a sale of ``lines`` to a buyer at ``location``: one sequence per line,
        in order (empty: no tax there). Called once per invoice with the taxable lines whose
        location and tax category (``line.category``) were not asked yet in this run: a rate
        may depend on the place and the category, never on the amount. Each ``TaxRate``'s
        ``id`` names the adjustment (shown as ``PROVIDER:ID``), ``label`` is printed on the
        invoice. A raise stops the run with an error naming the provider."""


T = TypeVar("T")


class Registry(Generic[T]):
    """Collects named things from plugins; a second thing with a taken name is an error.

    ``caller`` names the plugin whose hook is registering (the manager finds it); without it
    every entry's origin is ``?``.
    """

    def __init__(self, kind: str, caller: Callable[[], str] | None = None):
        self.kind = kind
        self.items: dict[str, T] = {}
        self.origins: dict[str, str] = {}
        self._caller = caller

    def __repr__(self) -> str:
        return f"<Registry of {self.kind}s>"

    def __call__(self, item: T) -> T:
        plugin = self._caller() if self._caller else "?"
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin `{plugin}` registered a {self.kind} without a name")
        if name in self.items:
            raise PluginError(
                f"two {self.kind}s named `{name}`: one from plugin `{self.origins[name]}`, "
                f"one from plugin `{plugin}`"
            )
        self.items[name] = item
        self.origins[name] = plugin
        return item
