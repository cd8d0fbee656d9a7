"""The docs stay true: the config reference matches the schemas, every hook is documented."""

import inspect
import re

from abonnement.config.reference import render_reference
from abonnement.plugins import hookspecs
from tests.conftest import ROOT


def test_the_config_reference_is_generated_from_the_schemas():
    on_disk = (ROOT / "docs" / "config.md").read_text()
    assert on_disk == render_reference(), (
        "docs/config.md is stale: python -m abonnement.config.reference > docs/config.md"
    )


def _hooks() -> list[str]:
    return [
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if n.startswith("abonnement_")
    ]


def test_every_hook_has_a_docstring_and_a_section_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(abonnement_\w+)\(", guide, re.M))
    assert documented == set(_hooks())
    for name in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc or "Stops at the first" in doc, f"{name}: say when it is called"


def test_the_hook_families_of_the_design_are_all_there():
    assert set(_hooks()) >= {
        "abonnement_register_processors", "abonnement_register_notifiers",
        "abonnement_open_storage", "abonnement_register_tax_providers",
        "abonnement_register_rule_functions", "abonnement_on_event",
        "abonnement_settings_schemas",
    }  # fmt: skip
