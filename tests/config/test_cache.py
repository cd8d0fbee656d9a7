"""The checked catalog kept beside the database (``config.cache``): used while the files are
unchanged, ignored when anything it stands for changed or when it is corrupt."""

import os
import shutil
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from abonnement import open_project
from abonnement.config import loader
from abonnement.config.cache import CACHE_SUFFIX, cache_path, declaration_hashes
from abonnement.config.loader import load
from abonnement.operations import declared
from abonnement.plugins.manager import Plugins

ROOT = Path(__file__).parents[2]
COFFEE = ROOT / "abonnement" / "examples" / "coffee"


@pytest.fixture
def coffee(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(COFFEE, target)
    return target


@pytest.fixture
def fresh_loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every load that read and checked the YAML files (a cache miss), by config root."""
    calls: list[Path] = []
    real = loader._load_catalog

    def spy(root, plugins):
        calls.append(root)
        return real(root, plugins)

    monkeypatch.setattr(loader, "_load_catalog", spy)
    return calls


def _names():
    return Plugins.load().names()


def test_cache_path_is_beside_a_sqlite_file_else_in_the_config(tmp_path: Path) -> None:
    db = tmp_path / "data" / "billing.db"
    assert cache_path(tmp_path, f"sqlite:///{db}") == Path(f"{db}{CACHE_SUFFIX}")
    assert cache_path(tmp_path, "sqlite://") is None
    assert cache_path(tmp_path, "sqlite:///:memory:") is None
    assert cache_path(tmp_path, "postgresql+psycopg://u@h/db") == tmp_path / ".abonnement-cache"


def test_unchanged_files_load_from_the_cache(coffee: Path, fresh_loads: list[Path]) -> None:
    cache = coffee.parent / "db.config-cache"
    first = load(coffee, _names(), cache=cache)
    assert fresh_loads == [coffee]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    second = load(coffee, _names(), cache=cache)
    assert fresh_loads == [coffee]  # not read again
    assert second.catalog == first.catalog
    assert second.catalog.declared_hashes == first.catalog.declared_hashes
    assert set(second.catalog.declared_hashes) == {"ane-coffee"}
    assert second.catalog.declared_at == {"ane-coffee": "abonnement.yaml:73:5"}
    assert [r.name for r in second.rules.pricing] == [r.name for r in first.rules.pricing]


def test_a_changed_file_is_loaded_again(coffee: Path, fresh_loads: list[Path]) -> None:
    cache = coffee.parent / "db.config-cache"
    before = load(coffee, _names(), cache=cache)
    yaml = coffee / "abonnement.yaml"
    yaml.write_text(yaml.read_text().replace(
        "      - {product: coffee-1kg, quantity: 1}\n    collection:",
        "      - {product: coffee-1kg, quantity: 3}\n    collection:"))  # fmt: skip
    after = load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2
    assert after.catalog.subscriptions["ane-coffee"].items[0].quantity == 3
    assert before.catalog.subscriptions["ane-coffee"].items[0].quantity == 1
    assert after.catalog.declared_hashes["ane-coffee"] != before.catalog.declared_hashes[
        "ane-coffee"]  # fmt: skip
    load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2  # the new version was kept


def test_a_rule_file_added_or_an_error_is_not_hidden_by_the_cache(
    coffee: Path, fresh_loads: list[Path]
) -> None:
    cache = coffee.parent / "db.config-cache"
    load(coffee, _names(), cache=cache)
    (coffee / "rules" / "more.rules").write_text(
        'segment americans { of subscriptions where customer.country == "US" }\n'
    )
    config = load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2
    assert str(coffee / "rules" / "more.rules") in config.catalog.rule_files
    yaml = coffee / "abonnement.yaml"
    yaml.write_text(yaml.read_text().replace("frequency: biweekly", "frequency: fortnightly"))
    with pytest.raises(loader.ConfigError) as raised:
        load(coffee, _names(), cache=cache)
    assert "fortnightly" in str(raised.value)
    with pytest.raises(loader.ConfigError):  # the broken config is never cached
        load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 4


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: b"not a cache at all",
        lambda data: data[: len(data) // 2],  # cut short: the pickle is incomplete
        lambda data: data[: data.index(b"\n", 30) + 1] + b"\x80\x05garbage",
    ],
)
def test_a_corrupt_cache_is_ignored_and_rebuilt(
    coffee: Path, fresh_loads: list[Path], damage
) -> None:
    cache = coffee.parent / "db.config-cache"
    good = load(coffee, _names(), cache=cache)
    cache.write_bytes(damage(cache.read_bytes()))
    again = load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2
    assert again.catalog == good.catalog
    load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2  # rebuilt whole


def test_another_version_ignores_the_cache(
    coffee: Path, fresh_loads: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    cache = coffee.parent / "db.config-cache"
    load(coffee, _names(), cache=cache)
    load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 1
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "99.0" if name == "abonnement" else real(name))  # fmt: skip
    load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2


def test_a_cache_others_may_write_is_ignored(coffee: Path, fresh_loads: list[Path]) -> None:
    cache = coffee.parent / "db.config-cache"
    load(coffee, _names(), cache=cache)
    os.chmod(cache, 0o666)
    load(coffee, _names(), cache=cache)
    assert len(fresh_loads) == 2
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600  # written again, private


def test_declaration_hashes_follow_the_catalog_around_them(coffee: Path) -> None:
    first = declaration_hashes(load(coffee, _names()).catalog)
    yaml = coffee / "abonnement.yaml"
    yaml.write_text(yaml.read_text().replace('price: "25.00 USD"', 'price: "26.00 USD"'))
    second = declaration_hashes(load(coffee, _names()).catalog)
    assert set(first) == set(second) == {"ane-coffee"}
    assert first["ane-coffee"] != second["ane-coffee"]  # its product's price changed
    assert declaration_hashes(load(coffee, _names()).catalog) == second


def test_hashes_are_stable_across_processes(coffee: Path) -> None:
    code = ("import sys; from abonnement.config.loader import load; "
            "from abonnement.config.cache import declaration_hashes; "
            "from abonnement.plugins.manager import Plugins; "
            "config = load(sys.argv[1], Plugins.load().names()); "
            "print(declaration_hashes(config.catalog)['ane-coffee'])")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = {
        subprocess.run([sys.executable, "-c", code, str(coffee)], env={**env,
                       "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                       check=True).stdout.strip()
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(seen) == 1


def test_apply_knows_unchanged_declarations_by_their_stored_digest(coffee: Path) -> None:
    ctx = open_project(coffee)
    first = declared.apply_declared(ctx, date(2026, 11, 30))
    assert first.created == ["ane-coffee"]
    digest = ctx.catalog.declared_hashes["ane-coffee"]
    assert ctx.storage.declared_hashes() == {"ane-coffee": digest}

    ctx = open_project(coffee)
    found = declared.compare(ctx, date(2026, 11, 30))
    assert [(d.id, d.action, d.known) for d in found] == [("ane-coffee", "unchanged", True)]
    assert declared.apply_declared(ctx, date(2026, 11, 30)).unchanged == ["ane-coffee"]

    # a definition written outside apply clears the digest: the next apply compares in full
    ctx.storage.set_payment_method("ane-coffee", "tok_mastercard", "card")
    assert ctx.storage.declared_hashes() == {}
    ctx = open_project(coffee)
    found = declared.compare(ctx, date(2026, 11, 30))
    assert [(d.id, d.action, d.known) for d in found] == [("ane-coffee", "unchanged", False)]
    declared.apply_declared(ctx, date(2026, 11, 30))
    assert ctx.storage.declared_hashes() == {"ane-coffee": digest}

    # a changed declaration is a change; one that waits (its next payment is inside the
    # freeze window) keeps the old digest, so every later apply compares it again
    yaml = coffee / "abonnement.yaml"
    yaml.write_text(yaml.read_text().replace(
        "      - {product: coffee-1kg, quantity: 1}\n    collection:",
        "      - {product: coffee-1kg, quantity: 2}\n    collection:"))  # fmt: skip
    ctx = open_project(coffee)
    applied = declared.apply_declared(ctx, date(2026, 11, 30))
    assert applied.deferred == {"ane-coffee": date(2026, 12, 1)}
    assert ctx.storage.declared_hashes() == {"ane-coffee": digest}
    ctx = open_project(coffee)
    assert [(d.action, d.known) for d in declared.compare(ctx, date(2026, 11, 30))] == [
        ("change", False)]  # fmt: skip
    # a month before the payment, out of the freeze window: applied, and its digest kept
    ctx = open_project(coffee)
    applied = declared.apply_declared(ctx, date(2026, 11, 1))
    assert applied.updated == ["ane-coffee"]
    new = ctx.catalog.declared_hashes["ane-coffee"]
    assert new != digest
    assert ctx.storage.declared_hashes() == {"ane-coffee": new}
    assert ctx.storage.subscriptions_named(["ane-coffee"])[0].items[0].quantity == 2


def test_only_what_aliases_add_counts_against_the_expansion_cap(monkeypatch) -> None:
    """A large file as written is bounded by its size alone (100,000 declared subscriptions
    are millions of values); repeating anchors beyond the cap is still refused."""
    from abonnement.config import yamlpos
    from abonnement.errors import YamlProblem

    monkeypatch.setattr(yamlpos, "MAX_NODES", 1000)
    plain = "subscriptions:\n" + "".join(f"  - {{id: s{i}, a: 1, b: 2}}\n" for i in range(2000))
    assert len(yamlpos.load_document(plain, "big.yaml").data["subscriptions"]) == 2000
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip("abcd", "bcde", strict=True):
        laughs += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    with pytest.raises(YamlProblem) as raised:
        yamlpos.load_document(laughs, "laughs.yaml")
    problem = raised.value.problem
    assert (problem.file, problem.message) == ("laughs.yaml",
                                               "document expands to more than 1,000 values")  # fmt: skip


def test_a_changed_or_removed_logo_file_is_not_hidden_by_the_cache(
    coffee: Path, fresh_loads: list[Path]
) -> None:
    # the logo is a file the YAML names, not a YAML file: the cache is checked against it
    cache = coffee.parent / "db.config-cache"
    yaml = coffee / "abonnement.yaml"
    yaml.write_text(yaml.read_text().replace(
        "  account: Just One More Cup Coffee Co.\n",
        "  account: Just One More Cup Coffee Co.\n  account_logo: logo.svg\n"))  # fmt: skip
    (coffee / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>')
    first = load(coffee, _names(), cache=cache).catalog.settings.account_logo_data
    (coffee / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle/></svg>')
    second = load(coffee, _names(), cache=cache).catalog.settings.account_logo_data
    assert len(fresh_loads) == 2 and first != second
    (coffee / "logo.svg").unlink()
    with pytest.raises(loader.ConfigError, match=r"cannot read the logo `logo\.svg`"):
        load(coffee, _names(), cache=cache)


def test_files_that_change_while_they_are_read_are_not_cached(
    coffee: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an editor saving (or a checkout) between the key's hashing and the parse: the catalog
    # built from the new text must not be kept under the old text's key
    cache = coffee.parent / "db.config-cache"
    yaml = coffee / "abonnement.yaml"
    original = yaml.read_text()
    real = loader._load_catalog

    def saved_meanwhile(root, plugins):
        yaml.write_text(original.replace('price: "25.00 USD"', 'price: "99.00 USD"'))
        return real(root, plugins)

    monkeypatch.setattr(loader, "_load_catalog", saved_meanwhile)
    assert (
        load(coffee, _names(), cache=cache).catalog.products["coffee-1kg"].prices["USD"].amount
        == 99
    )
    monkeypatch.setattr(loader, "_load_catalog", real)
    yaml.write_text(original)  # back to the text the first key was made from
    assert (
        load(coffee, _names(), cache=cache).catalog.products["coffee-1kg"].prices["USD"].amount
        == 25
    )
