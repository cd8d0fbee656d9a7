"""Project commands: init, validate, test, fmt, plugins, db upgrade."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from abonnement.app import App
from abonnement.cli.common import echo_json, print_problems
from abonnement.errors import ConfigError


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--example", type=click.Choice(["coffee"]), default="coffee", show_default=True)
def init(directory: Path, example: str) -> None:
    """Write a working config to DIRECTORY."""
    from abonnement.operations.project import init as write_example

    write_example(directory, example)
    click.echo(f"wrote the {example} example to {directory}/", err=True)
    click.echo(f"next: abonnement --config {directory} validate", err=True)


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github: workflow commands that annotate the files in a pull request.",
)
@click.pass_obj
def validate(app: App, fmt: str) -> None:
    """Load and check the config; print a summary line, or every error."""
    from abonnement.operations.queries import template_problems

    try:
        config = app.config
    except ConfigError as exc:
        print_problems(exc.problems, fmt)
        sys.exit(1)
    problems = template_problems(app.context)
    if problems:
        print_problems(problems, fmt)
        sys.exit(1)
    catalog, warnings = config.catalog, list(config.warnings)
    if fmt == "json":
        print_problems([], "json", warnings)
        return
    print_problems([], fmt, warnings)  # warnings do not make a config invalid
    counts = ", ".join(f"{k}: {n}" for k, n in catalog.counts().items() if n)
    rules = app.rules
    blocks = len(rules.pricing) + len(rules.triggers) + len(rules.segments)
    counts += f", rules: {blocks}" if blocks else ""
    click.echo(f"{app.config_dir}: valid ({counts}; version {catalog.version})")


@click.command("test")
@click.option("--coverage", "show_coverage", is_flag=True, help="List blocks no case exercised.")
@click.pass_obj
def test_command(app: App, show_coverage: bool) -> None:
    """Run the rule test cases (*.test.yaml in the config directory)."""
    from abonnement.config.cases import run_test_files
    from abonnement.rules.testing import coverage

    results, problems = run_test_files(app.config_dir, app.config)
    for problem in problems:
        click.echo(str(problem), err=True)
    failed = [r for r in results if not r.passed]
    for result in failed:
        click.echo(f"FAIL {result.name}")
        for difference in result.differences:
            click.echo(f"  {difference}")
    if show_coverage:
        missing = coverage(app.rules, results)
        click.echo("not exercised: " + (", ".join(missing) if missing else "none"))
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    click.echo(summary + (f", {len(problems)} errors" if problems else ""))
    if failed or problems:
        sys.exit(1)


@click.command("fmt")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def fmt_command(app: App, check: bool, files: tuple[Path, ...]) -> None:
    """Format rule files canonically (default: every *.rules under the config directory)."""
    from abonnement.rules.fmt import format_rules
    from abonnement.rules.parser import parse_rules

    paths = files or tuple(sorted(app.config_dir.rglob("*.rules")))
    changed, broken = [], []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        formatted = format_rules(text, str(path))
        if formatted is None:
            broken.extend(parse_rules(text, str(path)).problems)
            continue
        if formatted != text:
            changed.append(path)
            if not check:
                path.write_text(formatted, encoding="utf-8")
    for problem in broken:
        click.echo(str(problem), err=True)
    verb = "would reformat" if check else "reformatted"
    for path in changed:
        click.echo(f"{verb} {path}", err=True)
    click.echo(f"{len(changed)} {verb}, {len(paths) - len(changed) - len(broken)} unchanged"
               + (f", {len(broken)} with errors" if broken else ""))  # fmt: skip
    if broken or (check and changed):
        sys.exit(1)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def plugins_command(app: App, as_json: bool) -> None:
    """Installed plugins and what each registers."""
    rows = app.plugins.describe()
    if as_json:
        echo_json({"plugins": rows})
        return
    for row in rows:
        origin = "built-in" if row["builtin"] else (row["distribution"] or "third-party")
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items())
        click.echo(f"{row['name']}  ({origin})  {what or ', '.join(row['hooks'])}")


@click.group()
def db() -> None:
    """The database."""


@db.command()
@click.pass_obj
def upgrade(app: App) -> None:
    """Apply the database migrations."""
    from abonnement.operations.project import upgrade_database

    revision = upgrade_database(app.plugins, app.database_url)
    click.echo(f"database at migration {revision}")


COMMANDS = (init, validate, test_command, fmt_command, plugins_command, db)
