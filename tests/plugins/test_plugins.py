"""The plugin system: entry points, the block list, duplicates, settings contributions."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from abonnement.config.loader import load_config
from abonnement.engine.events import Event
from abonnement.errors import ConfigError, PluginError
from abonnement.plugins.manager import DEFAULT_PLUGINS, Plugins, build_plugin_manager
from tests.conftest import ROOT, run

FIXTURE = Path(__file__).parents[1] / "fixtures" / "acme_plugin"


def install_fake_distribution(site: Path, name: str, module_source: str, entry: str) -> None:
    """What `pip install` leaves behind: the module and a dist-info with an entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{entry}.py").write_text(module_source)
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[abonnement]\n{entry} = {entry}\n")


@pytest.fixture
def acme_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_fake_distribution(
        site, "acme-abonnement", (FIXTURE / "acme_abonnement.py").read_text(), "acme_abonnement"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("acme_abonnement", None)


def test_built_ins_register_through_the_hooks():
    plugins = Plugins.load(build_plugin_manager(entry_points=False))
    assert set(plugins.processors) == {"test", "stripe"}
    assert set(plugins.notifiers) == {"mailbox", "console", "smtp", "webhook"}
    assert "notifications.mailbox" in plugins.settings_schemas
    assert {row["name"] for row in plugins.describe()} == set(DEFAULT_PLUGINS)


def test_a_third_party_package_is_loaded_from_its_entry_point(acme_site):
    plugins = Plugins.load()
    assert plugins.processors["acme"].__name__ == "AcmePay"
    assert "acme-sms" in plugins.notifiers
    assert plugins.rule_functions["loyalty_years"].returns == "number"
    row = next(r for r in plugins.describe() if r["name"] == "acme_abonnement")
    assert row["distribution"] == "acme-abonnement 1.0"
    assert row["registers"]["processors"] == ["acme"]
    import acme_abonnement

    event = Event("subscription.created", "sub-1", date(2026, 12, 1))
    plugins.emit(event)
    assert acme_abonnement.SEEN_EVENTS == [event]


def test_settings_may_name_the_third_party_processor_and_use_its_block(acme_site, spec_config):
    path = spec_config / "abonnement.yaml"
    text = path.read_text().replace(
        "processor: test", "processor: acme\n    acme: {merchant_id: m1}"
    )
    path.write_text(text)
    catalog = load_config(spec_config, Plugins.load().names())
    assert catalog.settings.processor == "acme"
    assert catalog.settings.plugin_settings["payments.acme"] == {"merchant_id": "m1"}
    path.write_text(text.replace("merchant_id", "merchant"))
    with pytest.raises(ConfigError, match="unknown key `merchant`"):
        load_config(spec_config, Plugins.load().names())


def test_the_block_list_keeps_a_plugin_out(acme_site, monkeypatch):
    monkeypatch.setenv(
        "ABONNEMENT_DISABLE_PLUGINS", "acme_abonnement, abonnement.plugins.notifiers.console"
    )
    plugins = Plugins.load()
    assert "acme" not in plugins.processors
    assert "console" not in plugins.notifiers


def test_settings_naming_a_disabled_notifier_fail_validation(spec_config, monkeypatch):
    monkeypatch.setenv("ABONNEMENT_DISABLE_PLUGINS", "abonnement.plugins.notifiers.mailbox")
    result = run("--config", str(spec_config), "validate")
    assert result.exit_code == 1
    assert "unknown key `mailbox` in settings.notifications" in result.stderr


def test_two_processors_with_one_name_stop_start_up_naming_both(tmp_path, monkeypatch):
    source = textwrap.dedent(
        """
        from abonnement.plugins import hookimpl
        from abonnement.plugins.processors.test import TestProcessor

        class Impostor(TestProcessor):
            name = "test"

        @hookimpl
        def abonnement_register_processors(register):
            register(Impostor)
        """
    )
    install_fake_distribution(tmp_path / "site", "impostor", source, "impostor")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError) as raised:
        Plugins.load()
    message = str(raised.value)
    assert "two processors named `test`" in message
    assert "abonnement.plugins.processors.test" in message and "impostor" in message
    result = run("plugins")
    assert result.exit_code == 1 and "two processors named `test`" in result.stderr


def test_a_plugin_that_raises_is_named(tmp_path, monkeypatch):
    source = textwrap.dedent(
        """
        from abonnement.plugins import hookimpl

        @hookimpl
        def abonnement_register_notifiers(register):
            raise RuntimeError("no API key")
        """
    )
    install_fake_distribution(tmp_path / "site", "broken", source, "broken")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError, match=r"plugin `broken` failed in abonnement_register_notif"):
        Plugins.load()


def test_a_plugin_with_an_unknown_hook_is_refused(tmp_path, monkeypatch):
    source = textwrap.dedent(
        """
        from abonnement.plugins import hookimpl

        @hookimpl
        def abonnement_register_procesors(register):
            pass
        """
    )
    install_fake_distribution(tmp_path / "site", "typo", source, "typo")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError, match="typo"):
        build_plugin_manager()


def test_pip_installing_the_fixture_package_makes_the_cli_list_it(tmp_path):
    # The real thing: `pip install` of a plugin package, then `abonnement plugins` in a new process.
    site = tmp_path / "site"
    package = tmp_path / "pkg"
    shutil.copytree(FIXTURE, package)  # building leaves files beside the source: not in our tree
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-m", "abonnement", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    assert rows["acme"]["distribution"] == "acme-abonnement 1.0"
    assert rows["acme"]["registers"] == {
        "processors": ["acme"], "notifiers": ["acme-sms"], "rule_functions": ["loyalty_years"],
        "settings_schemas": ["payments.acme"],
    }  # fmt: skip
    assert rows["abonnement.plugins.processors.test"]["builtin"] is True


def test_a_plugin_rule_function_is_typed_and_callable(acme_site, spec_config):
    from abonnement.config.loader import load

    rules = spec_config / "rules" / "pricing.rules"
    rules.write_text(
        rules.read_text()
        + "\nsegment loyal {\n  of contacts\n  where loyalty_years(customer.id) >= 3\n}\n"
    )
    config = load(spec_config, Plugins.load().names())
    where = config.rules.segments["loyal"].where
    assert where({"customer": {"id": "ane"}}) is True
    assert where({"customer": {}}) is False  # none in, none out: the comparison is false
    rules.write_text(rules.read_text().replace(">= 3", '>= "3"'))
    with pytest.raises(ConfigError, match="cannot compare number with string"):
        load(spec_config, Plugins.load().names())


def test_without_the_plugin_its_function_is_unknown(spec_config):
    rules = spec_config / "rules" / "pricing.rules"
    rules.write_text(
        rules.read_text()
        + "\nsegment loyal {\n  of contacts\n  where loyalty_years(customer.id) >= 3\n}\n"
    )
    result = run("--config", str(spec_config), "validate")
    assert result.exit_code == 1
    assert "error: unknown function `loyalty_years`" in result.stderr


def test_a_mailbox_line_is_998_octets_at_most_whatever_its_script():
    """Long lines are counted in octets: 360 CJK characters (1,080 octets in UTF-8) make the
    part go base64, as the email package writes it; read back, the text is the same."""
    import email
    from email import policy

    from abonnement.plugins.interfaces import Message
    from abonnement.plugins.notifiers.mailbox import eml

    text = "日本語" * 120 + "\n"
    data = eml(Message(to=("a@example.com",), subject="S", text=text, html="<p>é</p>",
                       kind="k", key="k"))  # fmt: skip
    assert max(len(line) for line in data.split(b"\n")) <= 998
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert parsed.get_body(("plain",)).get_content() == text
