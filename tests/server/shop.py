"""A shop for the server tests: the spec's config (a Scenario) served in-process by
FastAPI's TestClient, on a fixed date, with a link secret and a webhook secret."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from abonnement.app import App
from abonnement.server import create_app
from tests.acceptance.scenario import Scenario

LINK_SECRET = "a-link-secret-for-the-tests-0123456789"
WEBHOOK_SECRET = "whsec-for-the-tests"
TODAY = date(2026, 12, 1)
ADDRESS_LINK = """\
payment_links:
  - id: grinder-shop
    name: A burr grinder, shipped
    collect_billing_address: true
    items:
      - {product: grinder, quantity: 1}
  - id: coffee-shipped
    name: Coffee, shipped every month
    collect_shipping_address: true
    items:
      - {product: coffee-1kg, quantity: 1}
"""


class Shop(Scenario):
    """A Scenario with a running app: ``client`` (a TestClient) and ``today``."""

    def __init__(self, root: Path, db_url: str, monkeypatch: Any, **kwargs: Any):
        super().__init__(root, db_url, **kwargs)
        monkeypatch.setenv("ABONNEMENT_LINK_SECRET", LINK_SECRET)
        monkeypatch.setenv("ABONNEMENT_WEBHOOK_SECRET", WEBHOOK_SECRET)
        (self.config / "links.yaml").write_text(ADDRESS_LINK)
        self.today = TODAY
        self.project = App(config_dir=self.config, database_url=db_url)
        self.client = TestClient(create_app(self.project, today=lambda: self.today))
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.project.context.close()

    def form(self, path: str, **fields: str) -> Any:
        """GET ``path``, then POST its form with ``fields`` and the page's CSRF token."""
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return self.client.post(path, data={"csrf_token": token, **fields})

    def mails(self) -> list[Any]:
        import email
        from email import policy

        folder = self.config / "outbox"
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(folder.glob("*.eml"))]  # fmt: skip


def text_of(html: str) -> str:
    """The words of a page, tags dropped and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
