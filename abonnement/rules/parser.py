"""Parse rule files: Lark (LALR) builds our AST directly, and syntax errors become messages.

The parser is built once per process. The transformer runs inside the LALR parser as it
reduces, so no tree is built and nothing recurses: 5,000 nested parentheses parse fine.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import UnexpectedEOF

from abonnement.engine.money import Money, MoneyError, parse_money, parse_percent
from abonnement.errors import Problem
from abonnement.rules.ast import (
    Binary,
    Block,
    BoolOp,
    Call,
    Duration,
    Expr,
    Field,
    IsSet,
    ListExpr,
    Literal,
    Stmt,
    Unary,
)

__all__ = ["MAX_DEPTH", "STATEMENT_KEYWORDS", "SYNTAX_EXAMPLES", "parse_rules", "source_context"]

MAX_DEPTH = 40  # nesting of real operations; redundant parentheses do not count

STATEMENT_KEYWORDS = (
    "label",
    "rate",
    "amount",
    "applies_to",
    "when",
    "once",
    "for",
    "taxable",
    "on",
    "do",
    "of",
    "where",
)
BLOCK_KINDS = ("tax", "discount", "fee", "trigger", "segment")

# Mistakes people make → the message they get. Lark matches a failing input against these by
# parser state (``match_examples``); the same table drives a parametrized test.
SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "a block starts with tax, discount, fee, trigger or segment, then its name and `{`": [
        "rule x { }",
        "taxes x { }",
        "{ rate 25% }",
    ],
    "a block needs a name before `{`": ["tax { rate 25% }", "discount { }"],
    "expected `{` after the block name": ["tax x rate 25%", "fee x }", "tax x y { }"],
    "expected an expression here": [
        "tax x { when a.b == }",
        "tax x { when a.b and }",
        "tax x { rate }",
        "tax x { when not }",
        "tax x { when a.b in }",
        "tax x { amount 1 + }",
    ],
    "an operator is missing between two values, or a statement keyword is misspelt": [
        "tax x { when a.b c.d }",
        'tax x { when a.b "DK" }',
        "tax x { rate 25% 10% }",
    ],
    "expected `)` to close the parenthesis or call": [
        "tax x { when (a.b == 1 }",
        "tax x { when f(a.b }",
        "tax x { when (a.b }",
    ],
    "expected `]` to close the list": ["tax x { when a.b in [1, 2 }"],
    "the block is not closed: expected `}`": ["tax x { rate 25%", "tax x { when a.b == 1"],
    "`label` takes a quoted string": ["tax x { label Moms }", "tax x { label 3 }"],
    "`for` takes a number of payments: `for 3 payments`": [
        "discount x { for three payments }",
        "discount x { for 3 }",
        "discount x { for 3 times }",
    ],
    "`on` takes an event name such as subscription.created": ['trigger x { on "created" }'],
    "`do` takes an action call: notify(...) or set(...)": [
        "trigger x { do notify }",
        'trigger x { do "notify" }',
    ],
    "`applies_to` takes line or invoice": ["tax x { applies_to 3 }"],
    "`of` takes subscriptions or contacts": ['segment x { of "subscriptions" }'],
    "`is` is followed by `set` or `not set`": [
        "tax x { when a.b is none }",
        "tax x { when a.b is }",
    ],
}


@cache
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_Build(), cache=True)


@cache
def _error_parser() -> Lark:
    """The same grammar without the transformer, for ``match_examples``."""
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", cache=True)


class _TooDeep(Exception):
    def __init__(self, line: int, column: int):
        self.line, self.column = line, column


class _BadLiteral(Exception):
    def __init__(self, token: Token, message: str):
        self.token, self.message = token, message


def _pos(item: Any) -> tuple[int, int]:
    return (item.line, item.column)


def _depth(*children: Any) -> int:
    return 1 + max((c.depth for c in children if hasattr(c, "depth")), default=0)


def _node(cls: type, first: Any, *children: Any, **fields: Any) -> Any:
    line, column = _pos(first)
    depth = _depth(*children)
    if depth > MAX_DEPTH:
        raise _TooDeep(line, column)
    return cls(line, column, depth, **fields)


_DURATION_RE = re.compile(r"^([0-9]+) +(day|week|month|year)s?$")


class _Build(Transformer):
    """Callbacks named after the grammar's rules and aliases; each returns an AST node."""

    # -- literals ---------------------------------------------------------------------------
    def money(self, children: list) -> Literal:
        (tok,) = children
        try:
            value: Money = parse_money(str(tok))
        except MoneyError as exc:
            raise _BadLiteral(tok, str(exc)) from None
        return Literal(tok.line, tok.column, 1, value, "money", str(tok))

    def percent(self, children: list) -> Literal:
        (tok,) = children
        return Literal(tok.line, tok.column, 1, parse_percent(str(tok)), "percent", str(tok))

    def duration(self, children: list) -> Literal:
        (tok,) = children
        match = _DURATION_RE.match(str(tok))
        assert match  # the terminal's pattern guarantees it
        value = Duration(int(match[1]), match[2] + "s")
        return Literal(tok.line, tok.column, 1, value, "duration", str(tok))

    def date(self, children: list) -> Literal:
        (tok,) = children
        try:
            value = date.fromisoformat(str(tok))
        except ValueError:
            raise _BadLiteral(tok, f"{tok} is not a calendar date") from None
        return Literal(tok.line, tok.column, 1, value, "date", str(tok))

    def number(self, children: list) -> Literal:
        (tok,) = children
        text = str(tok)
        value = Decimal(text) if "." in text else int(text)
        return Literal(tok.line, tok.column, 1, value, "number", text)

    def string(self, children: list) -> Literal:
        (tok,) = children
        text = str(tok)
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), text[1:-1])
        return Literal(tok.line, tok.column, 1, value, "string", text)

    def true(self, children: list) -> Literal:
        return Literal(children[0].line, children[0].column, 1, True, "bool", "true")

    def false(self, children: list) -> Literal:
        return Literal(children[0].line, children[0].column, 1, False, "bool", "false")

    def none(self, children: list) -> Literal:
        return Literal(children[0].line, children[0].column, 1, None, "none", "none")

    # -- expressions ------------------------------------------------------------------------
    def dotted(self, children: list) -> Field:
        return Field(children[0].line, children[0].column, 1, tuple(str(c) for c in children))

    def field(self, children: list) -> Field:
        return children[0]

    def list_(self, children: list) -> ListExpr:
        bracket, *rest = children
        items = tuple(c for c in rest if c is not None)
        return _node(ListExpr, bracket, *items, items=items)

    def call(self, children: list) -> Call:
        name, *rest = children
        args = tuple(a for a in rest if a is not None and not isinstance(a, tuple))
        kwargs = tuple(a for a in rest if isinstance(a, tuple))
        return _node(Call, name, *args, *(v for _, v in kwargs), name=str(name),
                     args=args, kwargs=kwargs)  # fmt: skip

    def kwarg(self, children: list) -> tuple[str, Expr]:
        name, value = children
        return (str(name), value)

    def not_(self, children: list) -> Unary:
        tok, operand = children
        return _node(Unary, tok, operand, op="not", operand=operand)

    def neg(self, children: list) -> Unary:
        tok, operand = children
        return _node(Unary, tok, operand, op="neg", operand=operand)

    def _binary(self, op: str, left: Expr, right: Expr) -> Binary:
        return _node(Binary, left, left, right, op=op, left=left, right=right)

    def _bool(self, op: str, left: Expr, right: Expr) -> BoolOp:
        # `and`/`or` are associative: chains (and parenthesised sub-chains) become one node
        head = left.operands if isinstance(left, BoolOp) and left.op == op else (left,)
        tail = right.operands if isinstance(right, BoolOp) and right.op == op else (right,)
        operands = (*head, *tail)
        return _node(BoolOp, left, *operands, op=op, operands=operands)

    def or_(self, children: list) -> BoolOp:
        return self._bool("or", *children)

    def and_(self, children: list) -> BoolOp:
        return self._bool("and", *children)

    def compare(self, children: list) -> Binary:
        left, op, right = children
        return self._binary(str(op), left, right)

    def text_op(self, children: list) -> Binary:
        left, op, right = children
        return self._binary(str(op), left, right)

    def in_(self, children: list) -> Binary:
        return self._binary("in", *children)

    def not_in(self, children: list) -> Binary:
        left, _, right = children
        return self._binary("not in", left, right)

    def is_set(self, children: list) -> IsSet:
        return _node(IsSet, children[0], children[0], operand=children[0], negated=False)

    def is_not_set(self, children: list) -> IsSet:
        return _node(IsSet, children[0], children[0], operand=children[0], negated=True)

    def add(self, children: list) -> Binary:
        return self._binary("+", *children)

    def sub(self, children: list) -> Binary:
        left, _, right = children
        return self._binary("-", left, right)

    def mul(self, children: list) -> Binary:
        return self._binary("*", *children)

    def div(self, children: list) -> Binary:
        return self._binary("/", *children)

    # -- statements and blocks --------------------------------------------------------------
    def _stmt(self, children: list, value: Any = None) -> Stmt:
        keyword = children[0]
        return Stmt(str(keyword), value, keyword.line, keyword.column)

    def label(self, c: list) -> Stmt:
        return self._stmt(c, self.string([c[1]]))

    def rate(self, c: list) -> Stmt:
        return self._stmt(c, c[1])

    amount = taxable = when = where = rate

    def applies_to(self, c: list) -> Stmt:
        return self._stmt(c, str(c[1]))

    of = applies_to

    def once(self, c: list) -> Stmt:
        return self._stmt(c)

    def for_payments(self, c: list) -> Stmt:
        return self._stmt(c, int(c[1]))

    def on(self, c: list) -> Stmt:
        return self._stmt(c, c[1])

    def do(self, c: list) -> Stmt:
        return self._stmt(c, c[1])

    def do_set(self, c: list) -> Stmt:
        do, set_tok, *rest = c
        given = [a for a in rest if a is not None]
        # named arguments are kept apart, as in any call: the checker refuses them here
        args = tuple(a for a in given if not isinstance(a, tuple))
        kwargs = tuple(a for a in given if isinstance(a, tuple))
        call = Call(set_tok.line, set_tok.column, 1, "set", args, kwargs)
        return Stmt(str(do), call, do.line, do.column)

    def block(self, c: list) -> Block:
        kind, name, *statements, end = c
        return Block(str(kind), str(name), tuple(statements), "", kind.line, kind.column, end.line)

    def start(self, c: list) -> list[Block]:
        return list(c)


@dataclass(frozen=True)
class ParseResult:
    blocks: tuple[Block, ...]
    problems: tuple[Problem, ...]


def source_context(text: str, line: int, column: int) -> str:
    """The source line and a caret under ``column``."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1].replace("\t", " ")
    return f"    {source}\n    {' ' * (column - 1)}^"


def _problem(file: str, text: str, line: int, column: int, message: str, hint: str | None = None):
    return Problem(file, line, column, message, hint, source_context(text, line, column))


_TERMINAL_WORDS = {
    "RBRACE": "`}`",
    "RPAR": "`)`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "STRING": "a string",
    "NAME": "a name",
    "INT": "a whole number",
}


_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MONEY", "PERCENT", "DATE"}
_STATEMENTS = {"LABEL", "RATE", "AMOUNT", "WHEN", "ONCE", "ON", "DO", "OF", "WHERE"}


def _by_expected(expected: set[str], token: Token | None) -> str | None:
    """The message for the common failures, told apart by what the parser wanted next."""
    if token is not None and token.type == "$END" and expected & (_STATEMENTS | {"RBRACE"}):
        return "the block is not closed: expected `}`"
    if _EXPRESSION_START <= expected:
        return "expected an expression here"
    if expected & _STATEMENTS and expected & {"COMPARE", "_AND"}:
        return "an operator is missing between two values, or a statement keyword is misspelt"
    if "RPAR" in expected and "RBRACE" not in expected:
        return "expected `)` to close the parenthesis or call"
    if "RSQB" in expected and "RBRACE" not in expected:
        return "expected `]` to close the list"
    if expected == {"INT"} or expected == {"_PAYMENTS"}:
        return "`for` takes a number of payments: `for 3 payments`"
    if "SET" in expected and "NOT" in expected:
        return "`is` is followed by `set` or `not set`"
    if expected == {"LPAR"}:
        return "`do` takes an action call: notify(...) or set(...)"
    return None


def _syntax_problem(text: str, file: str, exc: UnexpectedInput) -> Problem:
    line, column = exc.line, exc.column
    token = getattr(exc, "token", None)
    at_end = token is not None and token.type == "$END"
    if isinstance(exc, UnexpectedEOF) or line < 1 or at_end:
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    expected = set(getattr(exc, "expected", ()) or getattr(exc, "allowed", ()) or ())
    # A name where a statement keyword belongs is a misspelt or unknown keyword.
    at_statement = expected & _STATEMENTS and not expected & {"COMPARE", "_AND"}
    if token is not None and token.type == "NAME" and at_statement:
        word = str(token)
        close = difflib.get_close_matches(word, STATEMENT_KEYWORDS, n=1, cutoff=0.6)
        hint = (
            f"did you mean `{close[0]}`?"
            if close
            else (f"statements start with one of: {', '.join(STATEMENT_KEYWORDS)}")
        )
        return _problem(file, text, line, column, f"unknown keyword `{word}`", hint)
    if token is not None and token.type == "NAME" and expected <= {"KIND", "$END"}:
        close = difflib.get_close_matches(str(token), BLOCK_KINDS, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else None
        message = (
            "a block starts with tax, discount, fee, trigger or segment, then its name and `{`"
        )
        return _problem(file, text, line, column, message, hint)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == '"':
            return _problem(file, text, line, column, "unterminated string",
                            'strings are written "like this", on one line')  # fmt: skip
        return _problem(file, text, line, column, f"unexpected character {char!r}")
    label = _by_expected(expected, token)
    if label is None:
        try:
            label = exc.match_examples(_error_parser().parse, SYNTAX_EXAMPLES, use_accepts=True)
        except Exception:  # a failure to explain must not hide the error itself
            label = None
    if label:
        return _problem(file, text, line, column, label)
    got = f"`{token}`" if token is not None and str(token) else "the end of the file"
    words = sorted(_TERMINAL_WORDS.get(t, t.lower()) for t in expected)[:8]
    return _problem(file, text, line, column, f"unexpected {got}",
                    f"expected {', '.join(words)}" if words else None)  # fmt: skip


def parse_rules(text: str, file: str) -> ParseResult:
    """Parse one rule file. Syntax errors come back as problems (the first one per file)."""
    try:
        raw = _parser().parse(text)
    except UnexpectedToken as exc:
        if isinstance(exc.__context__, (_TooDeep, _BadLiteral)):
            return _special(text, file, exc.__context__)
        return ParseResult((), (_syntax_problem(text, file, exc),))
    except UnexpectedInput as exc:
        return ParseResult((), (_syntax_problem(text, file, exc),))
    except (_TooDeep, _BadLiteral) as exc:
        return _special(text, file, exc)
    lines = text.splitlines()
    return ParseResult(tuple(_with_file(b, file, lines) for b in raw), ())


def _special(text: str, file: str, exc: Exception) -> ParseResult:
    if isinstance(exc, _TooDeep):
        message = f"expression nested more than {MAX_DEPTH} levels deep"
        return ParseResult((), (_problem(file, text, exc.line, exc.column, message,
                                         "split it into simpler conditions"),))  # fmt: skip
    assert isinstance(exc, _BadLiteral)
    tok = exc.token
    return ParseResult((), (_problem(file, text, tok.line, tok.column, exc.message),))


def _with_file(block: Block, file: str, lines: list[str]) -> Block:
    comments = tuple(
        (n, lines[n - 1].strip())
        for n in range(block.line, min(block.end_line, len(lines)) + 1)
        if lines[n - 1].lstrip().startswith("#")
    )
    return Block(block.kind, block.name, block.statements, file, block.line, block.column,
                 block.end_line, comments)  # fmt: skip
