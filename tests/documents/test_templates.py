"""The config's templates: sandboxed, escaped, and checked by `validate` with sample data."""

import shutil
from pathlib import Path

import hypothesis
import jinja2
import pytest
from hypothesis import strategies as st

from abonnement.documents.templating import environment
from tests.acceptance.scenario import Scenario
from tests.conftest import ROOT, run
from tests.documents.test_invoice import issued

BUILTIN = ROOT / "abonnement" / "documents" / "templates"
ESCAPE = "{{ cycler.__init__.__globals__.os.getcwd() }}"


def _validate(config: Path, fmt: str = "text"):
    return run("--config", str(config), "validate", "--format", fmt)


@pytest.mark.parametrize(
    "attack",
    [
        ESCAPE,
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ money.__globals__ }}",
        "{% set x = lines.append(1) %}",  # a template changes nothing it is given
    ],
)
def test_an_invoice_template_cannot_reach_python(tmp_path, attack):
    s = issued(tmp_path)
    (s.config / "templates").mkdir()
    (s.config / "templates" / "invoice.html").write_text(f"<p>{attack}</p>\n")
    result = run("--config", str(s.config), "--db", s.db_url, "invoices", "render", "INV-00001")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invoice template: ")
    assert "unsafe" in result.stderr or "is undefined" in result.stderr
    assert str(Path.cwd()) not in result.output


def test_a_message_template_cannot_reach_os_at_delivery(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    (s.config / "templates").mkdir()
    (s.config / "templates" / "receipt.txt").write_text(f"Receipt\n\n{ESCAPE}\n")
    assert _validate(s.config).stderr.splitlines() == [
        "templates/receipt.txt:3:1: error: template error: access to attribute '__init__' of "
        "'type' object is unsafe.",
        "1 error",
    ]


def test_html_is_escaped_and_text_is_not(tmp_path):
    (tmp_path / "page.html").write_text("{{ v }}")
    (tmp_path / "note.txt").write_text("{{ v }}")
    env = environment(tmp_path, "en", "templates/messages")
    assert env.get_template("page.html").render(v="<b>&") == "&lt;b&gt;&amp;"
    assert env.get_template("note.txt").render(v="<b>&") == "<b>&"


def test_validate_renders_every_builtin_template_copied_into_the_config(spec_config):
    templates = spec_config / "templates"
    shutil.copytree(BUILTIN / "messages", templates)
    shutil.copy(BUILTIN / "invoice.html", templates / "invoice.html")
    result = _validate(spec_config)
    assert result.exit_code == 0, result.stderr
    assert ": valid (" in result.stdout


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("invoice.html", "<p>\n{{ invoice.number }\n</p>\n",
         "templates/invoice.html:2:1: error: template syntax error: unexpected '}'"),
        ("invoice.html", "<p>\n\n{{ invoice.numbr.upper() }}\n</p>\n",
         "templates/invoice.html:3:1: error: template error: 'abonnement.engine.records."
         "InvoiceRecord object' has no attribute 'numbr'"),
        ("payment_failed.txt", "Failed\n\n{{ update_link }}\n",
         "templates/payment_failed.txt:3:1: error: template error: 'update_link' is undefined"),
        ("_layout.html", "<html>\n{% for p in paragraphs %}{{ p }}\n</html>\n",
         "templates/_layout.html:2:1: error: template syntax error: Unexpected end of template. "
         "Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block "
         "that needs to be closed is 'for'."),
        ("receipt.txt", "Receipt\n\n{% include 'footer.txt' %}\n",
         "templates/footer.txt:2:1: error: template error: 'signature' is undefined"),
    ],
)  # fmt: skip
def test_validate_reports_a_broken_template_at_its_file_and_line(tmp_path, name, text, expected):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    (s.config / "templates").mkdir()
    (s.config / "templates" / name).write_text(text)
    (s.config / "templates" / "footer.txt").write_text("Thanks,\n{{ signature }}\n")
    result = _validate(s.config)
    assert result.exit_code == 1
    assert expected in result.stderr.splitlines()
    assert not (tmp_path / "a.db").exists()  # validation opens no database


def test_validate_names_the_template_in_json(tmp_path):
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    (s.config / "templates").mkdir()
    (s.config / "templates" / "welcome.txt").write_text("Hi\n\n{{ nope }}\n")
    import json

    result = _validate(s.config, "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"valid": False, "errors": [
        {"file": "templates/welcome.txt", "line": 3, "column": 1, "hint": None,
         "message": "template error: 'nope' is undefined", "severity": "error"}],
        "warnings": []}  # fmt: skip


def test_a_template_that_would_loop_for_hours_is_an_error_not_a_hang(tmp_path):
    # the sandbox bounds each range(), not loops inside loops: a CPU budget per render does
    import time

    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}")
    (s.config / "templates").mkdir()
    (s.config / "templates" / "receipt.txt").write_text(
        "Receipt\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
        "{% endfor %}\n"
    )
    started = time.monotonic()
    result = _validate(s.config)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("templates/receipt.txt:")]
    assert "rendering took more than 2 s of CPU time (a loop too long?)" in line


_WORDS = ["Hello", "&", "<b>", "pay:", "https://x.example/i/abc?d=1&e=2", "www.example.com",
          "bob@example.com", "(https://a.b/c).", "x.org", "'q'", '"dq"', "mailto:a@b.c",
          "http://", "foo.com,", "tel:+45", "a.net.", "&amp;", "ø", "$25.00",
          "https://example.com/)", "<https://e.com>", "e.com/path?q=<x>"]  # fmt: skip


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    words=st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from([" ", "  ", "\n", "\t"])),
                   min_size=1, max_size=12),
    autoescape=st.booleans(),
    marked=st.booleans(),
)  # fmt: skip
def test_urlize_gives_jinjas_output_looking_only_at_link_like_words(words, autoescape, marked):
    """The messages' ``urlize`` runs Jinja2's on the words that look like links only: the
    same text, escaped the same way, whatever the paragraph."""
    import markupsafe
    from jinja2.filters import do_urlize
    from jinja2.nodes import EvalContext

    from abonnement.documents.templating import _urlize

    text = "".join(word + space for word, space in words)
    value = markupsafe.Markup(markupsafe.escape(text)) if marked else text
    context = EvalContext(jinja2.Environment(autoescape=autoescape))
    assert str(_urlize(context, value)) == str(do_urlize(context, value))


def test_validate_gives_message_templates_every_declared_property(tmp_path):
    """A message template may read the custom properties every subscription carries (those
    declared with a default): ``validate`` renders it with the defaults."""
    roast = "      - {name: roast, type: enum, values: [light, medium, dark], default: medium,"
    s = Scenario(
        tmp_path,
        f"sqlite:///{tmp_path / 'a.db'}",
        replace={
            roast: (
                "      - {name: tier, type: string, default: bronze}\n"
                "      - {name: renewal, type: date, default: 2027-06-01}\n" + roast
            )
        },
    )
    (s.config / "templates").mkdir()
    (s.config / "templates" / "receipt.txt").write_text(
        "Receipt\n\n{{ subscription.properties.roast }} {{ subscription.properties.tier }} "
        "{{ day(subscription.properties.renewal) }}\n"
    )
    result = _validate(s.config)
    assert result.exit_code == 0, result.stderr
