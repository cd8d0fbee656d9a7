"""Project commands: init, validate, test, fmt, plugins, db upgrade, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import JSON_MODE, Exit, echo_json, json_option, print_problems
from abonnement.cli.tables import Column, csv_option, echo_rows
from abonnement.errors import AbonnementError, ConfigError


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--example", type=click.Choice(["coffee"]), default="coffee", show_default=True)
@click.option("--force", is_flag=True, help="Write the example over an existing directory.")
@json_option
def init(directory: Path, example: str, force: bool, as_json: bool) -> None:
    """Write a working config to DIRECTORY.

    A DIRECTORY that already holds an abonnement.yaml is left as it is (exit 0), so
    `abonnement init demo && abonnement --config demo run` can run again; --force writes the
    example's files over it."""
    from abonnement.operations.project import init as write_example

    done = write_example(directory, example, force=force)
    if as_json:
        echo_json(done.as_json())
    elif done.written:
        click.echo(f"wrote the {example} example to {directory}/")
        click.echo(f"next: abonnement --config {directory} validate", err=True)
    else:
        click.echo(f"{directory}/ is already initialised (it has an abonnement.yaml); left as "
                   "it is (--force writes the example over it)")  # fmt: skip


def _format_json(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value == "json":
        ctx.meta[JSON_MODE] = True
    return value


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    callback=_format_json,
    help="github: workflow commands that annotate the files in a pull request.",
)
@json_option
@click.pass_obj
def validate(app: App, fmt: str, as_json: bool) -> None:
    """Load and check the config; print a summary line, or every error (exit 1).

    `--json` is `--format json`."""
    from dataclasses import replace

    from abonnement import signing
    from abonnement.operations.queries import template_problems

    fmt = "json" if as_json else fmt
    try:
        config = app.config
    except ConfigError as exc:
        print_problems(exc.problems, fmt)
        sys.exit(Exit.REFUSED)
    problems = template_problems(app.checking_context)
    if problems:
        print_problems(problems, fmt)
        sys.exit(Exit.REFUSED)
    catalog, warnings = config.catalog, list(config.warnings)
    # a secret is the deployment's, not the config's: noted here, refused by what delivers
    warnings += [replace(p, message=f"{p.message}; commands that deliver refuse to start "
                         "without it", severity="warning")
                 for p in signing.unsigned(catalog.settings.signed_at)]  # fmt: skip
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
@json_option
@click.pass_obj
def test_command(app: App, show_coverage: bool, as_json: bool) -> None:
    """Run the rule test cases (*.test.yaml in the config directory); exit 1 if one fails."""
    from abonnement.config.cases import run_test_files
    from abonnement.rules.testing import coverage

    results, problems = run_test_files(app.config_dir, app.config)
    failed = [r for r in results if not r.passed]
    if as_json:
        payload = {
            "passed": len(results) - len(failed), "failed": len(failed),
            "cases": [{"name": r.name, "passed": r.passed,
                       "differences": [str(d) for d in r.differences]} for r in results],
            "errors": [p.as_json() for p in problems],
        }  # fmt: skip
        if show_coverage:
            payload["not_exercised"] = coverage(app.rules, results)
        echo_json(payload)
        if failed or problems:
            sys.exit(Exit.REFUSED)
        return
    for problem in problems:
        click.echo(str(problem), err=True)
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
        sys.exit(Exit.REFUSED)


@click.command("fmt")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file would change.")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_obj
def fmt_command(app: App, check: bool, files: tuple[Path, ...], as_json: bool) -> None:
    """Format rule files canonically (default: every *.rules under the config directory)."""
    from abonnement.rules.fmt import format_rules
    from abonnement.rules.parser import parse_rules

    paths = files or tuple(sorted(app.config_dir.rglob("*.rules")))
    changed, broken = [], []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise AbonnementError(f"cannot read {path}: {why}") from None
        formatted = format_rules(text, str(path))
        if formatted is None:
            broken.extend(parse_rules(text, str(path)).problems)
            continue
        if formatted != text:
            changed.append(path)
            if not check:
                try:
                    path.write_text(formatted, encoding="utf-8")
                except OSError as exc:
                    raise AbonnementError(f"cannot write {path}: {exc.strerror}") from None
    failed = bool(broken or (check and changed))
    if as_json:
        echo_json({"check": check, "changed": [str(p) for p in changed],
                   "unchanged": len(paths) - len(changed) - len(broken),
                   "errors": [p.as_json() for p in broken]})  # fmt: skip
        if failed:
            sys.exit(Exit.REFUSED)
        return
    for problem in broken:
        click.echo(str(problem), err=True)
    verb = "would reformat" if check else "reformatted"
    for path in changed:
        click.echo(f"{verb} {path}", err=True)
    click.echo(f"{len(changed)} {verb}, {len(paths) - len(changed) - len(broken)} unchanged"
               + (f", {len(broken)} with errors" if broken else ""))  # fmt: skip
    if failed:
        sys.exit(Exit.REFUSED)


def _origin(row: dict[str, Any]) -> str:
    return "built-in" if row["builtin"] else (row["distribution"] or "third-party")


def _registers(row: dict[str, Any]) -> str:
    what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items())
    return what or ", ".join(row["hooks"])


PLUGIN_COLUMNS = (
    Column("name"),
    Column("origin", _origin),
    Column("registers", _registers),
)


@click.command("plugins")
@csv_option
@json_option
@click.pass_obj
def plugins_command(app: App, as_csv: bool, as_json: bool) -> None:
    """Installed plugins and what each registers (or the hooks it implements)."""
    rows = app.plugins.describe()
    if as_json:
        echo_json({"plugins": rows})
        return
    echo_rows(PLUGIN_COLUMNS, rows, as_csv=as_csv)


@click.group()
def db() -> None:
    """The database."""


@db.command()
@json_option
@click.pass_obj
def upgrade(app: App, as_json: bool) -> None:
    """Apply the database migrations (run it after upgrading abonnement)."""
    from abonnement.operations.project import upgrade_database

    revision = upgrade_database(app.plugins, app.database_url or "")
    if as_json:
        echo_json({"revision": revision})
        return
    click.echo(f"database at migration {revision}")


@click.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of standard output.")  # fmt: skip
@json_option
@click.pass_obj
def schema_command(app: App, output: Path | None, as_json: bool) -> None:
    """One JSON Schema for a whole config file, with the installed plugins' settings, for
    editors: `# yaml-language-server: $schema=abonnement.schema.json` at the top of a file.

    The schema is JSON with or without --json (which makes errors JSON too)."""
    import json

    from abonnement.config.schemas import config_file_schema

    text = json.dumps(config_file_schema(app.plugins.settings_schemas), indent=2,
                      ensure_ascii=False) + "\n"  # fmt: skip
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AbonnementError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)


COMMANDS = (init, validate, test_command, fmt_command, plugins_command, db, schema_command)
