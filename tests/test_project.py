"""The project's promises about itself: README commands, CI, layout."""

import re

from tests.conftest import ROOT


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_screen = text[: text.index("## What you get")]
    return re.findall(r"```sh\n(.+?)\n```", first_screen)


def test_the_readme_first_screen_gives_exactly_two_commands():
    run, test = _readme_commands()
    assert run.endswith("abonnement init demo && abonnement --config demo run --until 2027-12-01")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()
    assert "ruff check ." in ci and "ruff format --check ." in ci
    assert "ABONNEMENT_TEST_DATABASE_URL" in ci


def test_the_pure_core_does_no_io():
    # engine/ and rules/ take values and return values: no plugins, CLI, SQL or files.
    banned = re.compile(
        r"^\s*(from|import) (abonnement\.(plugins|cli|app|config)|sqlalchemy|click|os|pathlib)\b",
        re.M,
    )
    for package in ("engine", "rules"):
        for path in (ROOT / "abonnement" / package).glob("*.py"):
            assert not banned.search(path.read_text()), path


def _imports(package: str) -> dict[str, set[str]]:
    """Every module a package's files import, by file."""
    found = {}
    for path in (ROOT / "abonnement" / package).rglob("*.py"):
        text = path.read_text()
        found[str(path.relative_to(ROOT))] = set(
            re.findall(r"^\s*(?:from|import) ([\w.]+)", text, re.M)
        )
    return found


def test_the_faces_reach_storage_only_through_operations():
    for path, modules in {**_imports("cli"), **_imports("server")}.items():
        leaked = {m for m in modules if m.startswith(("sqlalchemy", "abonnement.plugins.storage"))}
        assert not leaked, (path, leaked)


def test_the_core_and_the_config_import_no_face_no_plugin_and_no_sql():
    banned = ("sqlalchemy", "click", "abonnement.plugins", "abonnement.operations",
              "abonnement.cli", "abonnement.app")  # fmt: skip
    for package in ("engine", "rules", "config"):
        for path, modules in _imports(package).items():
            leaked = {m for m in modules if m.startswith(banned)}
            assert not leaked, (path, leaked)
