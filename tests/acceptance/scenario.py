"""A scenario: a config directory built from the spec's example, and the CLI run against a
database, always with ``--json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import SPEC, run

BASE = (SPEC / "abonnement.yaml").read_text()


class Scenario:
    def __init__(self, root: Path, db_url: str, *, rules: str | None = None,
                 subscriptions: str = "", extra: str = "", replace: dict | None = None):  # fmt: skip
        """The spec's config with its declared subscriptions replaced by ``subscriptions``
        (YAML list items), ``extra`` YAML appended, and ``rules`` as the only rule file."""
        text = BASE[: BASE.index("subscriptions:                          # declared")]
        text = text.replace('rules: ["rules/*.rules"]', 'rules: ["rules/*.rules"]' if rules
                            else "rules: []")  # fmt: skip
        bob = '    address: {line1: 1 Main St, city: New York, region: NY, postal_code: "10001", country: US}\n'
        assert bob in text
        text = text.replace(bob, bob + "    payment_methods:\n"
                            "      - {id: bob-visa, type: card, token: tok_visa}\n")  # fmt: skip
        processor = "    processor: test                     # a registered processor plugin\n"
        assert processor in text
        self.ledger = root / "ledger.db"
        text = text.replace(
            processor, f"    processor: test\n    test: {{ledger: '{self.ledger}'}}\n"
        )
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        if subscriptions:
            text += "subscriptions:\n" + subscriptions
        text += extra
        self.config = root / "config"
        (self.config / "rules").mkdir(parents=True)
        (self.config / "abonnement.yaml").write_text(text)
        if rules:
            (self.config / "rules" / "scenario.rules").write_text(rules)
        self.db_url = db_url

    def cli(self, *args: str, env: dict | None = None) -> Any:
        result = run("--config", str(self.config), "--db", self.db_url, *args, "--json", env=env)
        assert result.exit_code == 0, result.output + result.stderr
        return json.loads(result.stdout)

    def invoices(self, subscription: str | None = None) -> list[dict]:
        args = ["invoices", "list"] + (["--subscription", subscription] if subscription else [])
        return self.cli(*args)

    def subscription(self, sub_id: str) -> dict:
        return self.cli("subscriptions", "show", sub_id)

    def payments(self, subscription: str | None = None) -> list[dict]:
        return self.cli(
            "payments", "list", *(["--subscription", subscription] if subscription else [])
        )

    def charges(self) -> list[tuple]:
        """What the test processor's own ledger says really moved."""
        from abonnement.plugins.processors.test import TestProcessor

        return TestProcessor({"ledger": str(self.ledger)}).charges()
