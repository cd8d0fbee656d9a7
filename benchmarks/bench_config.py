"""Load + validate a generated config: 10,000 products, 1,000 contacts, 1,000 subscriptions.

Target (issue 2): at most 2 s. Run by hand: ``python benchmarks/bench_config.py [--profile]``.
Prints the best of three runs and where the time goes (parse / schema / build).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from abonnement.config.loader import load_config
from abonnement.plugins.manager import Plugins

FREQUENCIES = ["monthly", "biweekly", "quarterly", "annually", "weekly"]


def generate(root: Path, products: int = 10_000, contacts: int = 1_000, subs: int = 1_000) -> None:
    lines = [
        "settings:",
        "  account: Bench Co.",
        "  currencies: [USD, EUR]",
        "tax_rates:",
        "  - {id: vat, name: VAT, rate: 25%}",
        "products:",
    ]
    for i in range(products):
        freq = FREQUENCIES[i % len(FREQUENCIES)]
        lines += [
            f"  - id: p{i}",
            f"    sku: SKU-{i:05d}",
            f"    name: Product number {i}",
            f'    prices: {{USD: "{i % 97}.50 USD", EUR: "{i % 89}.25 EUR"}}',
            f"    frequency: {freq}",
            "    tax_rate: vat",
        ]
    lines.append("contacts:")
    for i in range(contacts):
        lines += [
            f"  - id: c{i}",
            f"    name: Contact {i}",
            f"    email: c{i}@example.com",
            "    address: {line1: 1 Main St, city: Springfield, postal_code: '12345', country: US}",
            f"    payment_methods: [{{id: pm{i}, type: card, token: tok_visa}}]",
        ]
    lines.append("subscriptions:")
    for i in range(subs):
        base = (i * 5) % products  # same frequency for the three items
        lines += [
            f"  - id: s{i}",
            f"    contact: c{i % contacts}",
            "    start: 2026-12-01",
            "    items:",
            *(f"      - {{product: p{base + 5 * k}, quantity: {k + 1}}}" for k in range(3)),
            "    collection: {mode: automatic, payment_method: pm" + str(i % contacts) + "}",
        ]
    (root / "abonnement.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    plugins = Plugins.load().names()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root)
        size = (root / "abonnement.yaml").stat().st_size
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            catalog = load_config(root, plugins)
            timings.append(time.perf_counter() - started)
        print(f"config: {size / 1e6:.1f} MB, {catalog.counts()}")
        print(f"load + validate: best {min(timings):.2f} s of 3 (target <= 2 s)")
        if args.profile:
            cProfile.runctx("load_config(root, plugins)", globals(), locals(), "/tmp/bench.prof")
            pstats.Stats("/tmp/bench.prof").sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
