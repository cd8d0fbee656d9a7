"""Rule evaluation speed against a hand-written lambda and two rule libraries.

Run by hand: ``pip install -e '.[bench]' && python benchmarks/bench_rules.py``. One process;
the table gives seconds per 200,000 evaluations and the ratio to the floor (a)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from decimal import Decimal

from abonnement.engine.money import Percent
from abonnement.rules.ruleset import build_ruleset
from abonnement.rules.types import RuleEnv

RULE = (
    'customer.country == "DK" and line.quantity >= 3 and line.frequency in ["monthly", "quarterly"]'
)
N = 200_000
SLOW_N = 10_000  # the libraries are timed on fewer contexts and scaled up


def contexts(n: int) -> list[dict]:
    rng = random.Random(42)
    countries, frequencies = ["DK", "US", "DE", "SE"], ["monthly", "quarterly", "annually"]
    out = []
    for _ in range(n):
        out.append({
            "customer": {"country": rng.choice(countries)},
            "line": {"quantity": rng.randint(1, 6), "frequency": rng.choice(frequencies)},
        })  # fmt: skip
    return out


def timed(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - started


def best(fn, items, repeat: int = 3) -> float:
    return min(timed(fn, items) for _ in range(repeat))


def main() -> None:
    ctxs = contexts(N)
    floor = best(
        lambda c: (
            c["customer"]["country"] == "DK"
            and c["line"]["quantity"] >= 3
            and c["line"]["frequency"] in ("monthly", "quarterly")
        ),
        ctxs,
    )
    rules, problems = build_ruleset(
        [("b.rules", f"tax t {{ rate 1% when {RULE} }}")], RuleEnv(), {}
    )
    assert not problems
    ours = best(rules.pricing[0].when, ctxs)
    rows = [("(a) hand-written lambda (floor)", floor), ("(b) abonnement, compiled", ours)]
    try:
        import rule_engine

        rule = rule_engine.Rule(RULE.replace("customer.country", 'customer["country"]')
                                .replace("line.quantity", 'line["quantity"]')
                                .replace("line.frequency", 'line["frequency"]'))  # fmt: skip
        rows.append(("(c) rule-engine", best(rule.matches, ctxs[:SLOW_N], 1) * N / SLOW_N))
    except ImportError:
        rows.append(("(c) rule-engine: not installed", float("nan")))
    try:
        import celpy

        env = celpy.Environment()
        program = env.program(env.compile(RULE.replace(" and ", " && ")))
        activations = [{k: celpy.json_to_cel(v) for k, v in c.items()} for c in ctxs[:SLOW_N]]
        rows.append(("(d) cel-python", best(program.evaluate, activations, 1) * N / SLOW_N))
    except ImportError:
        rows.append(("(d) cel-python: not installed", float("nan")))

    print(f"{N:,} evaluations of: {RULE}")
    print(f"{'':34} {'seconds':>9} {'× floor':>9} {'× ours':>9}")
    for name, seconds in rows:
        print(f"{name:34} {seconds:9.3f} {seconds / floor:9.2f} {seconds / ours:9.1f}")

    sources = "\n".join(
        f'discount d{i} {{ amount {i % 50 + 1}% when customer.country == "DK" and '
        f'line.quantity >= {i % 7} and line.sku startswith "SKU-{i}" }}'
        for i in range(1000)
    )
    started = time.perf_counter()
    _, problems = build_ruleset([("many.rules", sources)], RuleEnv(), {"vat": Percent(Decimal(25))})
    assert not problems
    print(
        f"parse + check + compile 1,000 rules: {time.perf_counter() - started:.3f} s "
        "(target <= 0.5 s)"
    )

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "abonnement", "--help"], check=True, capture_output=True)
    print(f"`abonnement --help`: {time.perf_counter() - started:.3f} s (target <= 0.3 s)")


if __name__ == "__main__":
    main()
