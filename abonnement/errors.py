"""One error hierarchy with stable codes. Every face renders an ``AbonnementError`` at one
boundary: the CLI as ``error: MESSAGE`` (or ``{"error": {"code", "message"}}`` with ``--json``)
and its exit code; the server as the same JSON with an HTTP status. Codes never change once
published: scripts and API clients branch on them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


class AbonnementError(Exception):
    """Base of every error a user can cause and act on. Exit code 1 at the CLI."""

    code = "error"
    exit_code = 1
    http_status = 400
    field: str | None = None  # the argument or form field at fault, when one is

    def as_json(self) -> dict[str, object]:
        """``{"code", "message"}``: the body of ``{"error": …}`` in JSON output."""
        return {"code": self.code, "message": str(self)}


class MoneyError(AbonnementError, ValueError):
    """Bad money arithmetic or text: mixed currencies, floats, unknown codes."""

    code = "invalid_money"


class ScheduleError(AbonnementError, ValueError):
    """An unknown frequency or an impossible billing date."""

    code = "invalid_schedule"


class InvalidInput(AbonnementError, ValueError):
    """An argument the operation cannot take (a bad option value, a missing item)."""

    code = "invalid_input"
    http_status = 422

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(message)

    def as_json(self) -> dict[str, object]:
        extra = {"field": self.field} if self.field else {}
        return {**super().as_json(), **extra}


class NotFound(AbonnementError, LookupError):
    """A record named by the caller does not exist. Exit code 3, HTTP 404."""

    code = "not_found"
    exit_code = 3
    http_status = 404

    def __init__(self, kind: str, ident: object, hint: str | None = None):
        self.kind, self.ident, self.hint = kind, ident, hint
        text = f"no {kind} `{ident}`"
        super().__init__(f"{text}; {hint}" if hint else text)

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "kind": self.kind, "id": str(self.ident)}


class InvalidState(AbonnementError):
    """The record exists but its state refuses the operation (an invoice already paid, a
    subscription canceled, an edit inside the freeze window). HTTP 409."""

    code = "invalid_state"
    http_status = 409


class AlreadyExists(InvalidState):
    """A record with this id exists already (or the purchase was made already)."""

    code = "already_exists"


class AlreadyPurchased(AlreadyExists):
    """The same payment link bought by the same contact on the same day, or the same quote or
    deal converted again: one purchase, recorded as ``invoice`` on ``on``. Nothing is charged
    again. HTTP 409; ``invoice`` in the JSON error, so a client can show the first purchase."""

    code = "already_purchased"

    def __init__(self, message: str, invoice: str | None, on: date | None = None):
        self.invoice, self.on = invoice, on
        super().__init__(message)

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "invoice": self.invoice}


class Busy(InvalidState):
    """Another process holds what the operation needs (the database a run holds, the lock
    migrations take) for longer than the wait allows; trying again later works. HTTP 409."""

    code = "busy"


class AlreadyCollecting(Busy):
    """Another caller is collecting this invoice right now (an attempt is pending): its
    outcome is the one; nothing more is charged. HTTP 409."""

    code = "already_collecting"


class PaymentDeclined(AbonnementError):
    """The processor refused the charge; ``failure_code`` is its reason."""

    code = "payment_declined"
    http_status = 402

    def __init__(self, message: str, failure_code: str | None = None):
        self.failure_code = failure_code
        super().__init__(message)

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "failure_code": self.failure_code}


class AuthenticationRequired(PaymentDeclined):
    """The buyer's bank wants the buyer to confirm the card (3-D Secure) before it is saved for
    payments made without them: the buyer's page completes it in the processor's own frame with
    ``client_secret`` and posts again with ``setup_intent`` (the authenticated setup) as the
    card. Nothing was charged. HTTP 402; ``client_secret`` and ``setup_intent`` in the JSON
    error, for a client's own page."""

    code = "authentication_required"

    def __init__(self, message: str, client_secret: str, setup_intent: str):
        self.client_secret, self.setup_intent = client_secret, setup_intent
        super().__init__(message, "authentication_required")

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "client_secret": self.client_secret,
                "setup_intent": self.setup_intent}  # fmt: skip


class Unauthorized(AbonnementError):
    """An HTTP API request without a valid API key (``Authorization: Bearer KEY``). HTTP 401."""

    code = "unauthorized"
    http_status = 401


class WebhookRefused(AbonnementError):
    """A processor webhook that is unsigned, badly signed, malformed or already recorded:
    refused with HTTP 400, nothing changed."""

    code = "webhook_refused"


class CollectionError(AbonnementError):
    """A payment cannot be taken as asked (no usable method, a method the link does not
    accept, an amount under the minimum)."""

    code = "collection_refused"


class BelowMinimumCharge(CollectionError):
    """A purchase would charge less now than the currency's ``payments.minimum_charge``: a
    ``CollectionError`` the buyer pages explain as such (its code stays the parent's)."""


class ProcessorTimeout(Exception):
    """The processor may have done the work, but its answer never came back. Raised by a
    processor plugin and handled by collection (the same key is asked again), so it is not an
    ``AbonnementError``: no user ever sees it."""


class PluginError(AbonnementError):
    """A plugin failed to load, registered a duplicate name, or raised."""

    code = "plugin_error"


class StorageError(AbonnementError):
    """The database cannot be used as asked (unknown scheme, wrong migration)."""

    code = "storage_error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the user's input, with where it is."""

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None
    context: str | None = None  # the source line with a caret under the column
    severity: str = "error"  # or "warning": reported, but the config is still valid

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"
        text = f"{text}; {self.hint}" if self.hint else text
        return f"{text}\n{self.context}" if self.context else text

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class ConfigError(AbonnementError):
    """The config (YAML or rules) is invalid. Carries every problem found, not just the first."""

    code = "invalid_config"
    http_status = 422

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "problems": [p.as_json() for p in self.problems]}


class CaseError(Exception):
    """A rule test case that cannot run: ``path`` points at the offending value in the case.
    Turned into a ``Problem`` of the ``ConfigError`` by the case loader, never shown as is."""

    def __init__(self, path: tuple, message: str, hint: str | None = None, *, key: bool = False):
        super().__init__(message)
        self.path, self.message, self.hint, self.key = path, message, hint, key


class YamlProblem(Exception):
    """A file that is not usable YAML; carries the ``Problem`` to report. Collected into a
    ``ConfigError`` by the config loader, never shown as is."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem
