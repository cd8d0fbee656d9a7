"""The command line: a thin face over ``abonnement.operations``.

Every command parses its options, calls one operation and renders the result. Errors become
messages at one boundary (``_Group.invoke``): ``error: MESSAGE`` on stderr, or with ``--json``
``{"error": {"code", "message", …}}`` on stdout, and the error's exit code (1 refused or
invalid, 2 usage, 3 not found)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from abonnement.app import DEFAULT_DATABASE_URL, App
from abonnement.cli import (
    billing,
    invoices,
    payments,
    plan,
    project,
    purchases,
    reports,
    serve,
    subscriptions,
)
from abonnement.cli.common import JSON_MODE, echo_json, print_problems
from abonnement.errors import AbonnementError, ConfigError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """The one error boundary: an ``AbonnementError`` is a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AbonnementError as exc:
            if ctx.meta.get(JSON_MODE):
                echo_json({"error": exc.as_json()})
            elif isinstance(exc, ConfigError):
                print_problems(exc.problems, "text")
            else:
                click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_dir",
    envvar="ABONNEMENT_CONFIG",
    default=".",
    show_default="$ABONNEMENT_CONFIG or .",
    type=click.Path(file_okay=False, path_type=Path),
    help="The config directory.",
)
@click.option(
    "--db",
    "database_url",
    envvar="ABONNEMENT_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="Database URL (sqlite:///FILE or postgresql+psycopg://…).",
)
@click.version_option(package_name="abonnement")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path, database_url: str) -> None:
    """abonnement: recurring billing as code."""
    ctx.obj = App(config_dir=config_dir, database_url=database_url)


for module in (
    project,
    purchases,
    billing,
    plan,
    subscriptions,
    invoices,
    payments,
    reports,
    serve,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="abonnement")
