"""What ships: package metadata, the sdist's contents, the editor and CI integrations, the
generated CLI reference, the config schema for editors, migrations for contributors."""

import json
import re
import tomllib

import yaml

from tests.conftest import ROOT, run

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_is_the_apache_license_the_metadata_names():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_dependencies_are_floored_not_capped_and_all_used():
    deps = PYPROJECT["project"]["dependencies"]
    assert not [d for d in deps if "<" in d], deps
    names = {re.split(r"[<>=\[ ]", d)[0] for d in deps}
    assert "python-dateutil" not in names and "filelock" in names
    code = "\n".join(p.read_text() for p in (ROOT / "abonnement").rglob("*.py"))
    for name in names:  # every dependency is imported somewhere
        module = {"pyyaml": "yaml", "sqlalchemy": "sqlalchemy"}.get(name.lower(), name.lower())
        assert re.search(rf"^\s*(from|import) {module}\b", code, re.M), name
    # the processor calls StripeClient(...).v1, which stripe 12.5 introduced
    assert PYPROJECT["project"]["optional-dependencies"]["stripe"] == ["stripe>=12.5"]
    assert "client.v1." in (ROOT / "abonnement/plugins/processors/stripe.py").read_text()


def test_the_sdist_carries_docs_tests_examples_and_the_license():
    manifest = (ROOT / "MANIFEST.in").read_text()
    for needed in ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "recursive-include docs",
                   "recursive-include tests", "recursive-include examples",
                   "*.mako", "*.po", "*.html", "*.lark"):  # fmt: skip
        assert needed in manifest, needed
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["abonnement"]
    assert "plugins/storage/migrations/script.py.mako" in data
    assert PYPROJECT["project"]["urls"]["Changelog"].endswith("CHANGELOG.md")


def test_the_cli_reference_is_generated_from_the_commands():
    from abonnement.cli.reference import render_reference

    on_disk = (ROOT / "docs" / "cli.md").read_text()
    assert on_disk == render_reference(), (
        "docs/cli.md is stale: python -m abonnement.cli.reference > docs/cli.md"
    )


def test_every_environment_variable_is_in_the_operations_guide():
    code = "\n".join(p.read_text() for p in (ROOT / "abonnement").rglob("*.py"))
    named = set(re.findall(r"\b((?:ABONNEMENT|STRIPE)_[A-Z_]+)\b", code))
    guide = (ROOT / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", guide, re.M))
    assert named - {"ABONNEMENT_TEST_DATABASE_URL"} <= documented, named - documented


def test_the_test_processor_tokens_are_documented():
    from abonnement.plugins.processors import test as processor

    tokens = {*processor._DECLINES, *processor._SUCCEEDS, *processor._DEBITS}
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert {t for t in tokens if f"`{t}`" not in guide} == set()


def _plain_yaml(text: str):
    """YAML as an editor's language server reads it: dates stay strings (YAML 1.2)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return yaml.load(text, Loader=Loader)


def test_the_schema_export_checks_a_whole_config_file(tmp_path):
    from jsonschema import Draft202012Validator

    result = run("schema")
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    coffee = _plain_yaml((ROOT / "abonnement/examples/coffee/abonnement.yaml").read_text())
    assert list(validator.iter_errors(coffee)) == []
    spec = _plain_yaml((ROOT / "examples/spec/abonnement.yaml").read_text())
    assert list(validator.iter_errors(spec)) == []
    # what an editor then marks
    coffee["products"][0]["price"] = 25
    coffee["settings"]["payments"]["procesor"] = "test"
    coffee["colour"] = "blue"
    paths = sorted("/".join(map(str, e.absolute_path)) for e in validator.iter_errors(coffee))
    assert paths == ["", "products/0/price", "settings/payments"]
    # plugins' settings blocks are in it
    assert "test" in schema["properties"]["settings"]["properties"]["payments"]["properties"]
    out = tmp_path / "abonnement.schema.json"
    assert run("schema", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == schema


def test_the_rules_grammar_for_editors_knows_every_keyword():
    lark = (ROOT / "abonnement" / "rules" / "grammar.lark").read_text()
    words = set()
    for pattern in re.findall(r"^[A-Z_]+(?:\.\d)?: /\(?([a-z_|]+)\)?\(\?!", lark, re.M):
        words.update(pattern.split("|"))
    for pattern in re.findall(r"\(\?!\(([a-z|]+)\)", lark):
        words.update(pattern.split("|"))
    assert {"tax", "discount", "when", "applies_to", "startswith", "none"} <= words
    grammar = json.loads((ROOT / "editors" / "abonnement-rules.tmLanguage.json").read_text())
    highlighted = set(re.findall(r"[a-z_]+", json.dumps(grammar["repository"])))
    assert words - highlighted == set()
    assert grammar["fileTypes"] == ["rules"]


def test_the_ci_integrations_run_validate_and_test():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    commands = [step.get("run", "") for step in action["runs"]["steps"]]
    assert "abonnement validate --format github" in commands
    assert "abonnement test" in commands
    hooks = {h["id"]: h["entry"] for h in yaml.safe_load(
        (ROOT / ".pre-commit-hooks.yaml").read_text())}  # fmt: skip
    assert hooks == {
        "abonnement-validate": "abonnement validate",
        "abonnement-test": "abonnement test",
        "abonnement-fmt": "abonnement fmt",
    }
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["db"]["image"].startswith("postgres")
    assert "abonnement run" in " ".join(compose["services"]["run"]["entrypoint"])
    assert compose["services"]["serve"]["command"][0] == "serve"
    assert "ABONNEMENT_LINK_SECRET" not in str(compose)  # a weak default would be refused
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    # the image runs `run` on PostgreSQL and `serve`: both extras installed
    assert 'pip install ".[postgres,server]"' in dockerfile
    assert 'ENTRYPOINT ["abonnement"]' in dockerfile


def test_alembic_revision_writes_a_migration_after_the_head(tmp_path):
    import shutil

    from alembic import command
    from alembic.config import Config

    migrations = tmp_path / "migrations"
    shutil.copytree(ROOT / "abonnement/plugins/storage/migrations", migrations)
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    heads = {p.name[:4] for p in (migrations / "versions").glob("0*.py")}
    head = max(heads)
    new_id = f"{int(head) + 1:04d}"
    command.revision(config, message="add a column", rev_id=new_id)
    (written,) = (migrations / "versions").glob(f"{new_id}_*.py")
    text = written.read_text()
    assert text.startswith('"""add a column\n\nRevision ID: ' + new_id)
    assert f'revision = "{new_id}"\ndown_revision = "{head}"\n' in text
    assert "def upgrade() -> None:" in text and "def downgrade() -> None:" in text
    compile(text, str(written), "exec")
