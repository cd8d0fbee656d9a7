"""The coffee story: the coffee example with more customers (a card that declines, a bank
debit, invoices paid by hand, euros, a bulk discount, a workflow that tells the team) billed
for seven months through the CLI; its mailbox, normalized, is a fixture the delivery pipeline
must reproduce byte for byte."""

from __future__ import annotations

import email
import re
import shutil
from email import policy
from pathlib import Path

from abonnement.operations.project import EXAMPLES

COFFEE = EXAMPLES / "coffee"
SECRET = {"ABONNEMENT_LINK_SECRET": "coffee-story-secret-coffee-story-secret"}
FIXTURE = Path(__file__).parent.parent / "fixtures" / "coffee_mailbox" / "mailbox.txt"

CONTACTS = """\
  - id: cara
    name: Cara Díaz
    email: cara@example.es
    payment_methods:
      - {id: cara-card, type: card, token: tok_insufficient_funds}
  - id: dan
    name: Dan Olsen
    email: dan@example.no
    payment_methods:
      - {id: dan-ach, type: ach, token: tok_ach}
  - id: eve
    name: Eve Martin
    email: eve@example.fr
    payment_methods:
      - {id: eve-card, type: card, token: tok_lost_card}
"""
SUBSCRIPTIONS = """\
  - id: bob-beans
    contact: bob
    start: 2026-12-15
    items:
      - {product: coffee-500g, quantity: 3}
    collection: {mode: manual, payment_terms: net_15}
  - id: cara-coffee
    contact: cara
    start: 2027-01-01
    items:
      - {product: coffee-1kg, quantity: 1}
    collection: {mode: automatic, method: saved, payment_method: cara-card}
  - id: dan-euro
    contact: dan
    currency: EUR
    start: 2027-01-10
    items:
      - {product: coffee-250g, quantity: 4}
    collection: {mode: automatic, method: saved, payment_method: dan-ach}
  - id: eve-coffee
    contact: eve
    start: 2027-02-01
    items:
      - {product: coffee-1kg, quantity: 2}
    collection: {mode: automatic, method: saved, payment_method: eve-card}
"""
RULES = """
trigger past_due_alert {
  on subscription.status_changed
  when subscription.status in ["unpaid", "past_due"]
  do notify(to: "team:billing", template: "past_due")
  do set(subscription.owner, "collections")
}

trigger welcome_email {
  on subscription.created
  do notify(to: "contact", template: "welcome")
}
"""
# the run's stops: each a `run --until` (the timeline moves on from the last)
STOPS = ("2026-12-01", "2026-12-20", "2027-01-05", "2027-02-01", "2027-03-15", "2027-06-30")


def story_config(root: Path, ledger: Path) -> Path:
    """The story's config directory under ``root`` (the processor's ledger at ``ledger``)."""
    config = root / "coffee"
    shutil.copytree(COFFEE, config)
    path = config / "abonnement.yaml"
    text = path.read_text()
    text = text.replace("    processor: test\n",
                        f"    processor: test\n    test: {{ledger: '{ledger}'}}\n")  # fmt: skip
    text = text.replace("    admins: [billing@example.com]\n",
                        "    admins: [billing@example.com]\n"
                        "    teams: {billing: [billing@example.com, ops@example.com]}\n"
                        "    first_payment: true\n    payment_succeeded: true\n"
                        "    payment_failed: true\n")  # fmt: skip
    text = text.replace("payment_links:\n", CONTACTS + "\npayment_links:\n")
    text += SUBSCRIPTIONS
    path.write_text(text)
    with (config / "rules" / "pricing.rules").open("a") as rules:
        rules.write(RULES)
    return config


_LINK = re.compile(r"(/[up]/)[A-Za-z0-9_\-.=~]+")


def mailbox(outbox: Path) -> str:
    """Every ``.eml`` of ``outbox`` as text: by file name, its recipients, subject, plain and
    HTML bodies; update links' tokens (random by design) replaced by ``TOKEN``."""
    out = []
    for path in sorted(outbox.glob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        plain = mail.get_body(("plain",))
        html = mail.get_body(("html",))
        parts = [
            f"=== {path.name}",
            f"To: {mail['To']}",
            f"Subject: {mail['Subject']}",
            "--- text",
            plain.get_content() if plain is not None else "",
            "--- html",
            html.get_content() if html is not None else "",
        ]
        out.append(_LINK.sub(r"\1TOKEN", "\n".join(parts)))
    return "\n".join(out)
