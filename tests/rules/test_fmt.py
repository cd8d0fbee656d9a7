"""`abonnement fmt`: canonical, idempotent, comment-preserving, meaning-preserving."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from abonnement.rules.fmt import format_rules, unparse
from abonnement.rules.parser import parse_rules
from tests.conftest import run
from tests.rules.test_backends import SPEC_RULES, TOKENS

MESSY = """# head
tax   a{rate 25%   # trailing
 when (customer.country=="DK") and not(customer.tax_exempt or (1+2)*3 > 4)   # why
  # inside
}
# between
discount b { amount 10% for 3 payments when line.quantity - (1 - 2) >= 3 and today() + 1 month > 2026-01-01 }
# end
"""

CANONICAL = """# head
tax a {
  rate 25%  # trailing
  when customer.country == "DK" and not (customer.tax_exempt or (1 + 2) * 3 > 4)  # why
  # inside
}

# between
discount b {
  amount 10%
  for 3 payments
  when line.quantity - (1 - 2) >= 3 and today() + 1 month > 2026-01-01
}

# end
"""


def shape(text: str) -> list:
    """A rule file's meaning: every block's statements, positions left out."""
    blocks = parse_rules(text, "x").blocks
    return [
        (b.kind, b.name, [(s.keyword, unparse(s.value) if hasattr(s.value, "line") else s.value)
                          for s in b.statements])
        for b in blocks
    ]  # fmt: skip


def test_messy_rules_become_canonical_with_every_comment():
    assert format_rules(MESSY) == CANONICAL
    assert format_rules(CANONICAL) == CANONICAL


def test_the_spec_rules_keep_their_meaning_and_comments():
    formatted = format_rules(SPEC_RULES)
    assert shape(formatted) == shape(SPEC_RULES)
    assert format_rules(formatted) == formatted
    comments = [line.split("#", 1)[1].strip() for line in SPEC_RULES.splitlines() if "#" in line]
    for comment in comments:
        assert comment in formatted


def test_precedence_needs_only_the_parentheses_it_needs():
    text = "tax t { rate 1% when (a.b - (c.d - e.f)) * 2 > (g.h) and ((i.j or k.l) and m.n) }"
    assert format_rules(text).splitlines()[2] == (
        "  when (a.b - (c.d - e.f)) * 2 > g.h and (i.j or k.l) and m.n"
    )


@settings(max_examples=200)
@given(st.data())
def test_formatting_is_idempotent_and_keeps_the_meaning(data):
    text = SPEC_RULES
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from([*TOKENS, " ", "(", ")"])) + text[at:]
    formatted = format_rules(text)
    if formatted is None:
        return  # the mutation broke the syntax; fmt refuses it
    assert format_rules(formatted) == formatted
    assert shape(formatted) == shape(text)


def test_fmt_check_and_write(tmp_path: Path):
    rules = tmp_path / "rules" / "a.rules"
    rules.parent.mkdir()
    rules.write_text(MESSY)
    result = run("--config", str(tmp_path), "fmt", "--check")
    assert result.exit_code == 1
    assert f"would reformat {rules}" in result.stderr
    assert rules.read_text() == MESSY
    assert run("--config", str(tmp_path), "fmt").exit_code == 0
    assert rules.read_text() == CANONICAL
    result = run("--config", str(tmp_path), "fmt", "--check")
    assert result.exit_code == 0 and "0 would reformat, 1 unchanged" in result.stdout


def test_fmt_refuses_a_file_with_syntax_errors(tmp_path: Path):
    (tmp_path / "bad.rules").write_text("tax t { rat 25% }\n")
    result = run("--config", str(tmp_path), "fmt")
    assert result.exit_code == 1
    assert "bad.rules:1:9: error: unknown keyword `rat`" in result.stderr
    assert (tmp_path / "bad.rules").read_text() == "tax t { rat 25% }\n"


def test_a_named_argument_in_set_is_formatted_then_refused_by_the_checker():
    text = 'trigger t {\n  on subscription.created\n  do set(s: subscription.owner, "x")\n}\n'
    assert 'do set("x", s: subscription.owner)' in format_rules(text)
