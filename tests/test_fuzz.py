"""Zero tracebacks, zero hangs: property-based tests over mutated configs and malformed
command lines.

- Config: the example that ``abonnement init`` writes, mutated (keys, types, ranges, dates,
  unicode, YAML structure, rule text). ``validate`` exits 0 or 1 within 5 s and never with a
  traceback; a config it accepts bills three months (``run --dry-run``) within 30 s, exit 0
  or 4, never with a traceback.
- Command line: every command of the click tree with malformed arguments (bad dates,
  negative and huge numbers, unicode, missing and existing paths, unknown ids, empty
  strings): exit 0–4, never a traceback, within 30 s.

Each bound is on the CPU time the case uses (the wall clock gets four times as long), so a
loaded machine does not fail a slow case as a hang. The examples are derandomized (the same
cases on every run); ``ABONNEMENT_FUZZ_EXAMPLES=N`` runs N per test instead of the CI's few
(e.g. 5000 locally), and ``ABONNEMENT_FUZZ_SURVEY=FILE`` counts every case's outcome in FILE
instead of stopping at the first failure."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abonnement.cli import cli
from abonnement.operations.project import EXAMPLES

_LOCAL = int(os.environ.get("ABONNEMENT_FUZZ_EXAMPLES", "0"))
# a file to count outcomes in, one JSON line per case, instead of stopping at the first failure
_SURVEY = os.environ.get("ABONNEMENT_FUZZ_SURVEY")
EXAMPLE_DIR = EXAMPLES / "coffee"
EXAMPLE_YAML = (EXAMPLE_DIR / "abonnement.yaml").read_text(encoding="utf-8")
EXAMPLE_RULES = (EXAMPLE_DIR / "rules" / "pricing.rules").read_text(encoding="utf-8")
EXAMPLE_DATA = yaml.safe_load(EXAMPLE_YAML)
RUN_UNTIL = "2027-03-01"  # three months of the example's subscription (it starts 2026-12-01)


def _settings(ci_examples: int) -> Any:
    return settings(
        max_examples=_LOCAL or ci_examples,
        derandomize=True,
        deadline=None,  # each case has its own wall-clock bound (_bounded)
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


class Hang(BaseException):
    """A case ran past its bound. A BaseException, so no ``except Exception`` swallows it."""


# The bound is on the CPU time the case uses, so a loaded machine does not make a slow case
# look like a hang; the wall clock gets a few times more, for a case that waits (a lock).
WALL_FACTOR = 4


@contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    def expire(signum: int, _frame: Any) -> None:
        clock = "CPU" if signum == signal.SIGPROF else "wall-clock"
        raise Hang(f"still running after {seconds * (1 if clock == 'CPU' else WALL_FACTOR)} s "
                   f"({clock})")  # fmt: skip

    previous = {sig: signal.signal(sig, expire) for sig in (signal.SIGALRM, signal.SIGPROF)}
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.setitimer(signal.ITIMER_PROF, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _survey(kind: str, check: Any, *args: Any) -> None:
    """Run one case; with ``ABONNEMENT_FUZZ_SURVEY`` set, count its outcome instead of
    failing on it."""
    if not _SURVEY:
        check(*args)
        return
    import json
    import traceback

    try:
        outcome, detail = check(*args), ""
    except AssertionError as exc:
        text = str(exc)
        outcome = "hang" if text.startswith("hang") else "traceback" if (
            text.startswith("traceback") or "Traceback" in text) else "bad-exit"  # fmt: skip
        cause = exc.__cause__
        detail = text[:300] + ("\n" + "".join(traceback.format_exception(cause))[-1500:]
                               if cause else "")  # fmt: skip
    with open(_SURVEY, "a", encoding="utf-8") as out:
        out.write(json.dumps({"kind": kind, "outcome": outcome, "case": _describe(args)[:3000],
                              "detail": detail}, ensure_ascii=False) + "\n")  # fmt: skip


def _describe(args: tuple) -> str:
    if isinstance(args[-1], list):
        return repr(args[-1])
    import difflib

    config_yaml, rules = args
    diff = difflib.unified_diff(EXAMPLE_YAML.splitlines(), config_yaml.splitlines(), n=0,
                                lineterm="")  # fmt: skip
    rules_diff = difflib.unified_diff(EXAMPLE_RULES.splitlines(), rules.splitlines(), n=0,
                                      lineterm="")  # fmt: skip
    return "\n".join([*list(diff)[2:], *list(rules_diff)[2:]])


def invoke(args: list[str], seconds: float) -> Result:
    """The CLI in-process, bounded in time. A hang or an uncaught exception fails the case
    with what the command line was."""
    try:
        with _bounded(seconds):
            result = CliRunner().invoke(cli, args, catch_exceptions=True)
    except Hang as exc:
        raise AssertionError(f"hang: abonnement {args!r}: {exc}") from None
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"traceback: abonnement {args!r}") from exc
    output = result.stdout + result.stderr
    assert "Traceback" not in output, f"abonnement {args!r} printed a traceback:\n{output}"
    return result


# -- the mutated config ---------------------------------------------------------------------

HUGE = 10**30
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "ø",
        "日本語",
        "\u202e",
        "\U0001f600",
        "a" * 5000,
        "null",
        "~",
        "NaN",
        ".nan",
        ".inf",
        "-.inf",
        "1e999",
        "-0",
        "0x1F",
        "0o17",
        "1_000",
        "yes",
        "NO",
        "25.00",
        "25.00 USD",
        "-25.00 USD",
        "1e30 USD",
        "NaN USD",
        "0.001 USD",
        "25.00 XXX",
        "9" * 400,
        "9999-12-31",
        "0001-01-01",
        "2026-02-30",
        "0000-00-00",
        "2026-12-01T25:00",
        "monthly",
        "weekly",
        "every 0 days",
        "every 99999999999 months",
        "../../etc/passwd",
        "/",
        "outbox/../../x",
        "*",
        "{seq:05d}",
        "{seq:99999999d}",
        "{nope}",
        "{",
        "%s",
        "INV-{seq:05d}-{seq}",
        "America/Nowhere",
        "UTC",
        "\x07",
        "\ud7ff",
        "\ufeff",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-HUGE, max_value=HUGE),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.sampled_from([dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1)]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    NASTY_TEXT,
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


MONEY_AMOUNTS = ["0.00", "0.01", "-1.00", "0.001", "99999999999999999999.00", "1e3", "1E-7",
                 "NaN", "Infinity", "1_000.00", "٣.٠٠", "25.00000001"]  # fmt: skip
EXTREME_DATES = [dt.date(1, 1, 1), dt.date(1, 1, 31), dt.date(9999, 12, 31),
                 dt.date(9999, 12, 1), dt.date(2026, 2, 28), dt.date(2024, 2, 29),
                 dt.date(2027, 3, 1), dt.date(2026, 11, 30)]  # fmt: skip


@st.composite
def like(draw: st.DrawFn, original: Any) -> Any:
    """A value of the original's type, taken to an extreme: the edits a schema cannot refuse
    by type alone."""
    if isinstance(original, bool):
        return not original
    if isinstance(original, int):
        return draw(st.sampled_from([0, -1, 1, 10**9, 10**9 + 1, 2**31, 2**63, 10**30, -(10**30)]))
    if isinstance(original, dt.date):
        return draw(st.one_of(st.sampled_from(EXTREME_DATES), st.dates()))
    if isinstance(original, list):
        return draw(st.sampled_from([[], original * 3, [original[0]] * 50] if original else [[]]))
    if isinstance(original, dict):
        return {}
    if isinstance(original, str):
        amount, space, currency = original.partition(" ")
        if space and amount.replace(".", "").isdigit():
            return (
                draw(st.sampled_from(MONEY_AMOUNTS))
                + space
                + draw(st.sampled_from([currency, currency, "EUR", "XXX", "usd", "JPY", "KWD", ""]))
            )
        return draw(st.one_of(NASTY_TEXT, st.just(original * 200), st.just(original + "\u0301"),
                              st.text(max_size=8).map(lambda t: original + t)))  # fmt: skip
    return draw(VALUES)


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


PATHS = list(_paths(EXAMPLE_DATA))[1:]


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


@st.composite
def data_mutation(draw: st.DrawFn) -> str:
    """The example's data with 1–3 edits (a value replaced, a key dropped, renamed or added,
    an item duplicated), dumped as YAML."""
    data = _copy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the path
        last = path[-1]
        op = draw(st.sampled_from(["like", "like", "like", "replace", "drop", "rename", "add",
                                   "duplicate", "nonstring-key"]))  # fmt: skip
        if op == "like":
            parent[last] = draw(like(parent[last]))
        elif op == "replace":
            parent[last] = draw(VALUES)
        elif op == "drop":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.one_of(NASTY_TEXT, st.text(max_size=10)))] = parent.pop(last)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(VALUES)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(_copy(parent[last]))
        elif op == "nonstring-key" and isinstance(parent, dict):
            parent[draw(st.one_of(st.integers(), st.booleans(), st.none(),
                                  st.dates()))] = parent.pop(last)  # fmt: skip
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1_000_000)


# billion laughs: each alias repeats the one before nine times
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
YAML_STRUCTURE = [
    BILLION_LAUGHS,
    "x: " + "[" * 200 + "]" * 200 + "\n",
    "x: " + "{a: " * 100 + "1" + "}" * 100 + "\n",
    "x: " + "[" * 5000 + "\n",
    "? [a, b]\n: c\n",
    "? {a: 1}\n: c\n",
    "1: x\n",
    "null: x\n",
    "2026-12-01: x\n",
    "x: !!python/object/apply:os.system [echo]\n",
    "x: !custom 1\n",
    "x: &anchor\n  <<: *anchor\n",
    "x: *undefined\n",
    "x: {<<: [1, 2]}\n",
    "---\nx: 1\n---\ny: 2\n",
    "\t- tab\n",
    "x: 'unterminated\n",
    "x: |\n  block\n y\n",
    "%YAML 1.1\n---\nx: 1\n",
    'x: "\\uD800"\n',
    'x: "\\U0010FFFF"\n',
    "- just\n- a list\n",
    "just a string\n",
    "",
    "settings: &s\n  account: A\nproducts: *s\n",
    "x: 1\nx: 2\n",
]


@st.composite
def text_mutation(draw: st.DrawFn) -> str:
    """The example's YAML text with a structural edit: hostile YAML appended or in place of a
    line, a line cut short or repeated, a span of characters replaced."""
    text = EXAMPLE_YAML
    lines = text.splitlines(keepends=True)
    op = draw(st.sampled_from(["append", "replace-line", "truncate", "splice", "repeat"]))
    i = draw(st.integers(0, len(lines) - 1))
    if op == "append":
        return text + draw(st.sampled_from(YAML_STRUCTURE))
    if op == "replace-line":
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        snippet = draw(st.sampled_from(YAML_STRUCTURE))
        lines[i] = "".join(indent + line for line in snippet.splitlines(keepends=True))
    elif op == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    elif op == "repeat":
        lines.insert(i, lines[i])
    else:
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        return text[:start] + draw(st.text(max_size=10)) + text[end:]
    return "".join(lines)


RULE_SNIPPETS = [
    "discount d { amount 10% applies_to line }",
    "discount d { amount 1000000000000000000000% applies_to line }",
    "discount d { amount -5.00 USD applies_to invoice }",
    "discount d { amount 99999999999999999999999999.00 USD applies_to invoice }",
    "discount d { amount 20% for 999999999999999999999 payments }",
    "discount d { amount 20% for 0 payments }",
    "fee f { amount 0.001 USD }",
    "fee f { amount 5.00 XXX }",
    "fee f { amount 2.9% + 999999999999.99 USD applies_to invoice }",
    "fee f { amount 100% * 100% * 100% * 1000000000 applies_to line }",
    "tax t { rate 99999999999999999999% }",
    'tax t { rate tax_rate("nope") }',
    "segment s { of subscriptions where " + "(" * 500 + "true" + ")" * 500 + " }",
    "segment s { of subscriptions where " + " and ".join(["true"] * 500) + " }",
    "segment s { of subscriptions where " + "not " * 500 + "true }",
    "segment s { of subscriptions where " + " + ".join(["1"] * 2000) + " > 1 }",
    'segment s { of contacts where customer.country == "\u202e" }',
    "segment s { of subscriptions where subscription.start_date > 9999-12-31 }",
    "segment s { of subscriptions where subscription.start_date > 0001-01-01 - 1 days }",
    "segment s { of subscriptions where subscription.start_date + 999999999 days > today() }",
    "segment s { of subscriptions where today() - 99999 months < subscription.start_date }",
    "segment s { of subscriptions where subscription.start_date + 9999 years > today() }",
    "segment s { of subscriptions where days_between(0001-01-01, 9999-12-31) > 1 }",
    "segment s { of subscriptions where subscription.mrr / 0 > 1 }",
    "segment s { of subscriptions where subscription.payments_made / 0 > 1 }",
    "segment s { of subscriptions where 99999999999999999999 * 99999999999999999999 > 1 }",
    'segment s { of subscriptions where subscription.id matches "(a+)+$" }',
    'segment s { of subscriptions where subscription.id matches "(" }',
    "segment s { of subscriptions where round(subscription.mrr, 99999999) > 1 }",
    "trigger t { on invoice.created when invoice.subtotal > 999999999999999999999999.00 USD "
    'do notify(to: "contact", template: "welcome") }',
    'trigger t { on subscription.created do set(subscription.owner, "' + "x" * 5000 + '") }',
    "discount bulk_coffee { amount 10% }",
    'discount x { label "' + "é" * 3000 + '" amount 1% applies_to line }',
    "{",
    "}",
    "\x00",
    "#",
    '"',
]
RULE_WORDS = ["when", "and", "or", "not", "10%", "-1", "1e9999", "\"x\"", "line.quantity",
              "customer", ".", "(", ")", "{", "}", "==", ">=", "startswith", "in", "[", "]",
              "9999-99-99", "2026-12-01", "USD", "0.00 USD", "days", "months"]  # fmt: skip


@st.composite
def rule_mutation(draw: st.DrawFn) -> str:
    """The example's rules with a block appended, a token replaced or a span edited."""
    text = EXAMPLE_RULES
    op = draw(st.sampled_from(["append", "word", "splice", "truncate"]))
    if op == "append":
        return text + "\n" + draw(st.sampled_from(RULE_SNIPPETS)) + "\n"
    if op == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 12)))
    new = draw(st.sampled_from(RULE_WORDS)) if op == "word" else draw(st.text(max_size=8))
    return text[:start] + new + text[end:]


CONFIGS = st.one_of(
    data_mutation().map(lambda y: (y, EXAMPLE_RULES)),
    text_mutation().map(lambda y: (y, EXAMPLE_RULES)),
    rule_mutation().map(lambda r: (EXAMPLE_YAML, r)),
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the cases; each case writes its config and database there anew."""
    return tmp_path_factory.mktemp("fuzz")


def _write_config(root: Path, config_yaml: str, rules: str) -> Path:
    config = root / "config"
    shutil.rmtree(config, ignore_errors=True)
    shutil.copytree(EXAMPLE_DIR, config)
    (config / "abonnement.yaml").write_text(config_yaml, encoding="utf-8", errors="surrogatepass")
    (config / "rules" / "pricing.rules").write_text(rules, encoding="utf-8",
                                                     errors="surrogatepass")  # fmt: skip
    return config


def check_config(root: Path, config_yaml: str, rules: str) -> str:
    """``validate``, and a three-month dry run when it passes: ``accepted`` or ``refused``."""
    config = _write_config(root, config_yaml, rules)
    db = root / "abonnement.db"
    db.unlink(missing_ok=True)
    validated = invoke(["--config", str(config), "validate"], 5)
    assert validated.exit_code in (0, 1), validated.output
    if validated.exit_code == 1:
        return "refused"
    ran = invoke(["--config", str(config), "--db", f"sqlite:///{db}", "run", "--dry-run",
                  "--as-of", RUN_UNTIL], 30)  # fmt: skip
    assert ran.exit_code in (0, 4), ran.output + ran.stderr
    return "accepted"


@_settings(ci_examples=100)
@given(case=CONFIGS)
def test_a_mutated_config_is_validated_and_run_without_a_traceback(workspace, case):
    _survey("config", lambda *a: check_config(workspace, *a), *case)


# -- malformed command lines ----------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_commands(cli))
IDS = ["ane-coffee", "INV-00001", "1", "ane", "bob", "coffee-1kg", "grinder", "coffee-monthly",
       "nope", "INV-99999", "0", "-1"]  # fmt: skip
BAD = ["", " ", "-", "--", "ø", "日本語", "\u202e", "\U0001f600", "a" * 300, "-1", "0",
       "99999999999999999999", "1099511627776", "1e309", "NaN", "inf", "-inf", "0.001",
       "1,50", "12.50", "5 USD", "2026-13-45", "0000-01-01", "0001-01-01", "9999-12-31",
       "2026-02-30", "26-12-01", "2026-12-01T00:00", "%Y", "{seq}", "x=y", "=", "1=",
       "=1", "1=-5.00 USD", "1=abc", "coffee-1kg:0", "coffee-1kg:-1",
       "coffee-1kg:99999999999999999999", "..", "/", "/dev/null", "/proc/self/status"]  # fmt: skip
DATES = [
    "2026-12-01",
    "2027-01-15",
    "2027-03-01",
    "0001-01-01",
    "0001-12-31",
    "1970-01-01",
    "9999-01-01",
    "9999-12-01",
    "9999-12-31",
    "2026-13-45",
    "2026-02-30",
    "1-1-1",
    "",
]
NUMBERS = ["0", "-1", "1", "2", "12", "120", "121", "65536", "2147483648", "9223372036854775808",
           "1099511627776", "1" + "0" * 30, "-" + "9" * 30, "nan", "inf", "1.5", ""]  # fmt: skip


def _option_value(param: click.Parameter, place: str) -> st.SearchStrategy[str]:
    """Mostly values of the parameter's type that are out of range or malformed, sometimes
    anything at all."""
    kind = param.type
    typed: list[st.SearchStrategy[str]] = []
    if isinstance(kind, click.Choice):
        typed.append(st.sampled_from([str(c) for c in kind.choices]))
    elif isinstance(kind, click.DateTime):
        typed.append(st.sampled_from(DATES))
    elif isinstance(kind, click.Path | click.File):
        typed.append(st.sampled_from([f"{place}/missing/dir/out.png", f"{place}/exists.txt",
                                      place, f"{place}/new.png", f"{place}/new", "/",
                                      f"{place}/config", f"{place}/a.db"]))  # fmt: skip
    elif isinstance(kind, click.types._NumberParamTypeBase):
        typed.append(st.sampled_from(NUMBERS))
        typed.append(st.integers(-(2**70), 2**70).map(str))
    else:
        typed.append(st.sampled_from(IDS))
        typed.append(st.sampled_from(BAD))
    anything = st.one_of(st.sampled_from(BAD), st.sampled_from(IDS), st.sampled_from(DATES),
                         st.text(max_size=12).filter(lambda s: "\x00" not in s))  # fmt: skip
    return st.one_of(*typed, *typed, anything)


@st.composite
def command_line(draw: st.DrawFn, place: str) -> list[str]:
    """One command with some of its options and arguments, each given a malformed or a
    plausible value."""
    path, command = draw(st.sampled_from(COMMANDS))
    args = []
    if draw(st.integers(0, 9)) == 0:  # the root options (the last given wins)
        args += draw(st.sampled_from([
            ["--db", ""], ["--db", "foo://"], ["--db", f"sqlite:///{place}/missing/dir/x.db"],
            ["--db", f"sqlite:///{place}/exists.txt"], ["--db", f"sqlite:///{place}"],
            ["--db", "sqlite:///:memory:"], ["--db", "postgresql+psycopg://127.0.0.1:1/x"],
            ["--config", f"{place}/missing"], ["--config", f"{place}/exists.txt"],
            ["--config", place], ["-q", "-v"], ["--log-format", "json"], ["--version"],
        ]))  # fmt: skip
    args += path
    for param in command.params:
        if isinstance(param, click.Option):
            wanted = 9 if param.required else 4
            if param.name == "help" or draw(st.integers(0, 9)) >= wanted:
                continue
            name = draw(st.sampled_from(param.opts))
            if param.is_flag:
                args.append(name)
                continue
            for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
                args += [name, *(draw(_option_value(param, place))
                                 for _ in range(max(param.nargs, 1)))]  # fmt: skip
        else:
            if draw(st.integers(0, 9)) == 0:
                continue  # a missing argument
            count = param.nargs if param.nargs > 0 else draw(st.integers(0, 2))
            args += [draw(_option_value(param, place)) for _ in range(count)]
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from(["--nope", "extra", "--json", "-h"])))
    return args


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example after a run (invoices, payments, a delivery): the state cases start from."""
    root = tmp_path_factory.mktemp("billed")
    config = root / "config"
    shutil.copytree(EXAMPLE_DIR, config)
    result = invoke(["--config", str(config), "--db", f"sqlite:///{root / 'a.db'}", "run",
                     "--as-of", "2027-01-15"], 60)  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` starts and returns at once instead of serving forever."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)


def check_command(billed: Path, place: Path, args: list[str]) -> int:
    shutil.rmtree(place, ignore_errors=True)
    shutil.copytree(billed, place)
    (place / "exists.txt").write_text("here\n")
    root = ["--config", str(place / "config"), "--db", f"sqlite:///{place / 'a.db'}"]
    with contextlib.chdir(place):  # a relative path given (`init -- --force`) lands there
        result = invoke([*root, *args], 30)
    assert result.exit_code in (0, 1, 2, 3, 4), (result.exit_code, result.output)
    return "accepted" if result.exit_code in (0, 4) else "refused"


@_settings(ci_examples=250)
@given(data=st.data())
def test_every_command_with_malformed_arguments_exits_cleanly(billed, workspace, no_server,
                                                             data):  # fmt: skip
    place = workspace / "command"
    args = data.draw(command_line(str(place)))
    _survey("command", check_command, billed, place, args)


def test_the_command_tree_is_covered():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"validate", "run", "init", "report", "serve", "invoices pay"} <= names


# -- each kind of failure the fuzzing found, fixed in place ---------------------------------


def _validate(root: Path, old: str, new: str, rules: str = EXAMPLE_RULES) -> tuple[int, str]:
    assert old in EXAMPLE_YAML
    config = _write_config(root, EXAMPLE_YAML.replace(old, new, 1), rules)
    result = invoke(["--config", str(config), "validate"], 5)
    return result.exit_code, result.stderr.replace(str(config) + "/", "")


NUMBER_FORMAT = 'number_format: "INV-{seq:05d}"'
HINT = "use exactly one {seq} field, e.g. INV-{seq:05d}, and at most 50 characters"


@pytest.mark.parametrize(
    "number_format",
    [
        "{seq[0]}",  # was a TypeError traceback at validate
        "INV-{seq:99999999d}",  # was a 100 MB string per invoice number: the run hung
        "INV-{seq:>1000000000}",
        "INV-{seq:{seq}}",  # the width grows with the sequence
        "INV-{seq:c}",  # a character: past U+10FFFF an OverflowError in a run
        "INV-{seq:060d}",  # longer than the 50 characters a number is stored in
    ],
)
def test_an_invoice_number_format_that_cannot_number_every_invoice_is_refused(
    tmp_path, number_format
):
    code, err = _validate(tmp_path, NUMBER_FORMAT, f'number_format: "{number_format}"')
    assert (code, err) == (
        1,
        f"abonnement.yaml:11:20: error: bad invoice number format {number_format!r} in settings.invoices.number_format; {HINT}\n"
        "1 error\n",
    )


def test_a_time_zone_name_too_long_for_zoneinfo_is_an_unknown_time_zone(tmp_path):
    name = "America/New_York" * 200  # was a RecursionError inside zoneinfo's package lookup
    code, err = _validate(tmp_path, "timezone: America/New_York", f"timezone: {name}")
    assert (code, err.splitlines()[0]) == (
        1,
        f"abonnement.yaml:6:13: error: unknown time zone `{name}` in settings.timezone; "
        "e.g. Europe/Copenhagen",
    )


@pytest.mark.parametrize("start", ["9999-12-31", "0001-01-01", "2100-01-01", "1899-12-31"])
def test_a_date_beyond_the_bounds_is_a_config_error(tmp_path, start):
    code, err = _validate(tmp_path, "start: 2026-12-01", f"start: {start}")
    assert (code, err) == (
        1,
        f"abonnement.yaml:76:12: error: {start} is outside 1900-01-01 to 2099-12-31 in "
        "subscription `ane-coffee` (start); see the bounds in docs/concepts.md\n1 error\n",
    )


def test_the_last_day_in_bounds_validates_and_runs(tmp_path):
    config = EXAMPLE_YAML.replace("start: 2026-12-01", "start: 2099-12-31")
    assert check_config(tmp_path, config, EXAMPLE_RULES) == "accepted"


def test_a_fixed_term_that_ends_past_the_calendar_is_a_config_error(tmp_path):
    code, err = _validate(
        tmp_path,
        "      - {product: coffee-1kg, quantity: 1}\n    collection:",
        "      - {product: coffee-1kg, quantity: 1, frequency: P999Y}\n"
        "    terms: {payments: 1200}\n    collection:",
    )
    assert (code, err) == (
        1,
        "abonnement.yaml:79:23: error: 1,200 payments of P999Y end after the year 9999 in "
        "subscription `ane-coffee` (terms.payments); see the bounds in docs/concepts.md\n"
        "1 error\n",
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (BILLION_LAUGHS, "document expands to more than 1,000,000 values"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", "nesting deeper than 64 levels"),
        ("? [a, b]\n: c\n", "mapping keys must be plain scalars"),
        ("x: !!python/object/apply:os.system [echo]\n", "is not allowed"),
    ],
)
def test_hostile_yaml_is_refused_at_once(tmp_path, snippet, message):
    config = _write_config(tmp_path, EXAMPLE_YAML + snippet, EXAMPLE_RULES)
    result = invoke(["--config", str(config), "validate"], 5)
    assert result.exit_code == 1
    assert message in result.stderr


def _billed_cli(billed: Path, place: Path, *args: str) -> Result:
    shutil.rmtree(place, ignore_errors=True)
    shutil.copytree(billed, place)
    (place / "exists.bin").write_bytes(b"\xff\xfe\x00rules")
    root = ["--config", str(place / "config"), "--db", f"sqlite:///{place / 'a.db'}"]
    return invoke([*root, *args], 30)


RANGE = "is outside 1900-01-01 to 2099-12-31"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # an OSError traceback from matplotlib
        (["report", "mrr", "--from", "2026-12-01", "--to", "2027-02-01", "--chart",
          "{place}/missing/dir/out.png"],
         1, "error: --chart: cannot write {place}/missing/dir/out.png: No such file or directory"),
        # 2,400 bars: drawing took minutes
        (["report", "mrr", "--from", "1900-01-01", "--to", "2099-12-31", "--chart",
          "{place}/out.png"],
         2, "Error: --chart draws at most 240 months; this series has 2400: narrow --from and --to"),
        # ValueError: year 10000 is out of range
        (["forecast", "--as-of", "9999-12-31"], 2,
         f"Error: Invalid value for '--as-of': 9999-12-31 {RANGE}"),
        (["report", "mrr", "--from", "0001-01-01"], 2,
         f"Error: Invalid value for '--from': 0001-01-01 {RANGE}"),
        # billing 8,000 years of periods: a hang
        (["run", "--until", "9999-01-01", "--dry-run"], 2,
         f"Error: Invalid value for '--until': 9999-01-01 {RANGE}"),
        # OverflowError after the record was checked
        (["subscriptions", "create", "--id", "s2", "--contact", "bob", "--item", "coffee-1kg",
          "--payments", "1099511627776"], 2,
         "Error: Invalid value for '--payments': 1099511627776 is not in the range 1<=x<=1200."),
        # UnicodeDecodeError reading a binary file as rules
        (["fmt", "{place}/exists.bin"], 1, "error: cannot read {place}/exists.bin: not UTF-8 text"),
        (["init", "{place}/exists.txt"], 1,
         "error: {place}/exists.txt is a file; pick a new directory"),
    ],
)  # fmt: skip
def test_each_malformed_command_line_found_is_a_message(billed, tmp_path, args, code, message):
    place = tmp_path / "place"
    args = [a.replace("{place}", str(place)) for a in args]
    if "init" in args:
        (tmp_path / "exists.txt").write_text("here\n")
        place = tmp_path
        args = [a.replace(str(tmp_path / "place"), str(tmp_path)) for a in args]
    result = _billed_cli(billed, tmp_path / "place", *args)
    assert result.exit_code == code, result.output
    assert result.stderr.strip().splitlines()[-1] == message.replace("{place}", str(place))
    assert not (tmp_path / "place" / "out.png").exists()


def test_a_fixed_term_past_the_calendar_is_refused_by_the_operation():
    from abonnement.engine.bounds import payments_problem
    from abonnement.engine.schedule import Frequency

    assert payments_problem(1200, Frequency.parse("P1M")) is None
    assert payments_problem(7, Frequency.parse("P999Y")) is None
    assert payments_problem(8, Frequency.parse("P999Y")) == (
        "8 payments of P999Y end after the year 9999"
    )
    assert payments_problem(1201) == "1,201 payments is outside 1 to 1,200"


RENEWAL = '  subscriptions:\n    custom_properties:\n      - {name: renewal, type: date, default: "%s"}\n  invoices:\n'
SHIFTED = "\ndiscount early {\n  amount 1%\n  applies_to line\n  when subscription.properties.renewal + 1 days > today()\n}\n"


def test_a_rule_shifts_a_date_property_as_a_date(tmp_path):
    # a date property reached the rules as text: `+ 1 days` was a TypeError traceback in run
    config = _write_config(tmp_path, EXAMPLE_YAML.replace("  invoices:\n", RENEWAL % "2027-01-01", 1),
                           EXAMPLE_RULES + SHIFTED)  # fmt: skip
    result = invoke(["--config", str(config), "--db", f"sqlite:///{tmp_path / 'a.db'}", "run",
                     "--dry-run", "--as-of", RUN_UNTIL], 30)  # fmt: skip
    assert (result.exit_code, result.stdout) == (
        0, "up to 2027-03-01: would issue 4 invoices (99.50 USD)\n",  # two before the renewal
    )  # fmt: skip


def test_a_date_property_beyond_the_bounds_is_a_config_error(tmp_path):
    code, err = _validate(tmp_path, "  invoices:\n", RENEWAL % "9999-12-31")
    assert (code, err) == (
        1,
        "abonnement.yaml:12:46: error: property `renewal` must be a date from 1900-01-01 to "
        "2099-12-31, got '9999-12-31' in settings.subscriptions.custom_properties[0].default\n"
        "1 error\n",
    )
