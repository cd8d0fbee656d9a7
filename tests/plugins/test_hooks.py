"""Hooks are called through pluggy: other plugins' wrappers run around them, calls can be
traced, and a plugin that raises is named even when another plugin's wrapper surrounds it."""

import logging
import sys
import textwrap
from datetime import date

import pytest

from abonnement.engine.events import Event
from abonnement.errors import PluginError
from abonnement.plugins.manager import Plugins, build_plugin_manager
from tests.acceptance.scenario import Scenario
from tests.acceptance.test_collection_scenarios import BOB_SAVED
from tests.plugins.test_plugins import install_fake_distribution

OBSERVER = """
from abonnement.plugins import hookimpl

SEEN = []

@hookimpl
def abonnement_on_event(event):
    SEEN.append(event.type)
"""

WRAPPER = """
from abonnement.plugins import hookimpl

AROUND = []

@hookimpl(wrapper=True)
def abonnement_on_event(event):
    import observer_plugin
    before = list(observer_plugin.SEEN)
    result = yield
    AROUND.append((event.type, before, list(observer_plugin.SEEN), result))
    return result
"""

RAISING = """
from abonnement.plugins import hookimpl

@hookimpl
def abonnement_on_event(event):
    raise RuntimeError("observer down")
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages directory on the path; modules installed there are forgotten after."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in ("observer_plugin", "wrapper_plugin", "raising_plugin"):
        sys.modules.pop(name, None)


def test_a_third_party_wrapper_runs_around_the_observers_during_a_billing_run(tmp_path, site):
    install_fake_distribution(site, "observer-plugin", OBSERVER, "observer_plugin")
    install_fake_distribution(site, "wrapper-plugin", WRAPPER, "wrapper_plugin")
    s = Scenario(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", subscriptions=BOB_SAVED)
    s.cli("apply", "--as-of", "2026-12-01")
    s.cli("run", "--until", "2026-12-01")  # the run, then its outbox pass
    import observer_plugin
    import wrapper_plugin

    types = ["subscription.created", "subscription.status_changed", "invoice.created",
             "payment.succeeded", "invoice.paid"]  # fmt: skip
    assert observer_plugin.SEEN == types
    # each call: the wrapper ran before the observer and saw its (empty) list of answers after
    assert wrapper_plugin.AROUND == [
        (kind, types[:i], types[: i + 1], []) for i, kind in enumerate(types)
    ]


def test_a_raising_observer_is_named_not_the_wrapper_around_it(site):
    install_fake_distribution(site, "observer-plugin", OBSERVER, "observer_plugin")
    install_fake_distribution(site, "wrapper-plugin", WRAPPER, "wrapper_plugin")
    install_fake_distribution(site, "raising-plugin", RAISING, "raising_plugin")
    plugins = Plugins.load()
    with pytest.raises(PluginError) as raised:
        plugins.emit(Event("invoice.paid", "sub-1", date(2026, 12, 1)))
    assert str(raised.value) == (
        "plugin `raising_plugin` failed in abonnement_on_event: RuntimeError('observer down')"
    )


def test_a_raising_registration_hook_is_named_among_several(site):
    source = textwrap.dedent(
        """
        from abonnement.plugins import hookimpl

        def _helper(register):
            raise ValueError("bad class")

        @hookimpl
        def abonnement_register_processors(register):
            _helper(register)
        """
    )
    install_fake_distribution(site, "broken-pay", source, "raising_plugin")
    with pytest.raises(PluginError, match=r"^plugin `raising_plugin` failed in abonnement_reg"):
        Plugins.load()


def test_tracing_logs_every_hook_call_with_its_arguments_and_result(monkeypatch, caplog):
    monkeypatch.setenv("ABONNEMENT_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="abonnement.hooks")
    plugins = Plugins.load(build_plugin_manager(entry_points=False))
    records = [r for r in caplog.records if r.name == "abonnement.hooks"]
    calls = [r.getMessage() for r in records if r.getMessage().startswith("call ")]
    assert [c.split("(")[0] for c in calls] == [
        "call abonnement_register_processors",
        "call abonnement_register_notifiers",
        "call abonnement_register_tax_providers",
        "call abonnement_register_rule_functions",
    ] + ["call abonnement_settings_schemas"] * 5  # each contributing plugin on its own
    assert "register=<Registry of processors>" in calls[0]
    assert "abonnement.plugins.processors.test" in calls[0]
    caplog.clear()
    plugins.open_storage("sqlite:///:memory:")
    messages = [r.getMessage() for r in caplog.records if r.name == "abonnement.hooks"]
    assert messages[0] == (
        "call abonnement_open_storage(url='sqlite:///:memory:', migrate=True) "
        "[abonnement.plugins.storage]"
    )
    assert messages[1].startswith("done abonnement_open_storage -> <")
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "abonnement.hooks")


def test_tracing_logs_a_failed_call(site, monkeypatch, caplog):
    install_fake_distribution(site, "raising-plugin", RAISING, "raising_plugin")
    monkeypatch.setenv("ABONNEMENT_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="abonnement.hooks")
    plugins = Plugins.load()
    caplog.clear()
    with pytest.raises(PluginError):
        plugins.emit(Event("invoice.paid", "sub-1", date(2026, 12, 1)))
    messages = [r.getMessage() for r in caplog.records if r.name == "abonnement.hooks"]
    assert messages == [
        "call abonnement_on_event(event=Event(type='invoice.paid', subject_id='sub-1', "
        "on=datetime.date(2026, 12, 1), payload=mappingproxy({}), seq=0)) [raising_plugin]",
        "fail abonnement_on_event: RuntimeError('observer down')",
    ]


def test_without_the_variable_nothing_is_traced(monkeypatch, caplog):
    monkeypatch.delenv("ABONNEMENT_TRACE_HOOKS", raising=False)
    caplog.set_level(logging.DEBUG, logger="abonnement.hooks")
    Plugins.load(build_plugin_manager(entry_points=False)).open_storage("sqlite:///:memory:")
    assert [r for r in caplog.records if r.name == "abonnement.hooks"] == []
