"""The command line: a thin face over ``abonnement.operations``.

Every command parses its options, calls one operation and renders the result. Errors become
messages at one boundary (``_Group.invoke``): ``error: MESSAGE`` on stderr, or with ``--json``
``{"error": {"code", "message", …}}`` on stdout, and the error's exit code (``Exit``: 1
refused or invalid, 2 usage, 3 not found, 4 partial). A usage error (a bad option) is an error
like any other: with ``--json`` it is ``{"error": {"code": "usage", …}}``.

What a command did is logged (``cli/logs.py``) on stderr: ``-q``, ``-v``, ``--log-format``."""

from __future__ import annotations

import logging
from itertools import pairwise
from pathlib import Path
from typing import Any

import click

from abonnement.app import App, find_config_dir
from abonnement.cli import (
    billing,
    credit_notes,
    events,
    invoices,
    payments,
    plan,
    project,
    purchases,
    reports,
    serve,
    subscriptions,
)
from abonnement.cli.common import JSON_MODE, LOG_JSON, QUIET, Exit, echo_json, print_problems
from abonnement.cli.logs import LOGGER, configure
from abonnement.errors import AbonnementError, ConfigError

__all__ = ["cli", "main"]

_ARGS = "abonnement.args"  # the command line after the root options, kept in ctx.meta
log = logging.getLogger(LOGGER + ".cli")


class _Group(click.Group):
    """The one error boundary: an ``AbonnementError`` is a message and an exit code; a usage
    error with ``--json`` is a JSON error too (exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AbonnementError as exc:
            if _json_wanted(ctx):
                echo_json({"error": exc.as_json()})
            elif ctx.meta.get(LOG_JSON):
                log.error(str(exc), extra={"code": exc.code})
            elif isinstance(exc, ConfigError):
                print_problems(exc.problems, "text")
            else:
                click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            if not _json_wanted(ctx):
                raise
            echo_json({"error": {"code": "usage", "message": exc.format_message()}})
            ctx.exit(Exit.USAGE)


def _json_wanted(ctx: click.Context) -> bool:
    """``--json`` (or ``--format json``) was given, even if parsing stopped before it."""
    if ctx.meta.get(JSON_MODE):
        return True
    args = ctx.meta.get(_ARGS, [])
    args = args[: args.index("--")] if "--" in args else args
    return "--json" in args or "--format=json" in args or ("--format", "json") in pairwise(args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_dir",
    envvar="ABONNEMENT_CONFIG",
    show_default="$ABONNEMENT_CONFIG, else the nearest directory up from here with an "
    "abonnement.yaml, else .",
    type=click.Path(file_okay=False, path_type=Path),
    help="The config directory.",
)
@click.option(
    "--db",
    "database_url",
    envvar="ABONNEMENT_DATABASE_URL",
    show_default="$ABONNEMENT_DATABASE_URL, else sqlite:///CONFIG/abonnement.db",
    help="Database URL (sqlite:///FILE or postgresql+psycopg://…).",
)
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail too.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="ABONNEMENT_LOG_FORMAT",
    help="How the log on standard error is written (json: one object per line).",
)
@click.version_option(package_name="abonnement")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path | None, database_url: str | None, quiet: bool,
        verbose: bool, log_format: str) -> None:  # fmt: skip
    """abonnement: recurring billing as code.

    Exit codes: 0 done, 1 refused or invalid (a config error, a state that refuses the
    command), 2 usage (a bad option or argument), 3 not found, 4 partial (the run finished
    but something could not be billed or delivered)."""
    if quiet and verbose:
        raise click.UsageError("give -q or -v, not both")
    configure(-1 if quiet else 1 if verbose else 0, log_format)
    ctx.meta[LOG_JSON] = log_format == "json"
    ctx.meta[QUIET] = quiet
    found = True
    if config_dir is None:
        config_dir = find_config_dir(Path.cwd())
        found = config_dir is not None
    ctx.obj = App(config_dir=config_dir or Path("."), database_url=database_url, found=found)


for module in (
    project,
    purchases,
    billing,
    plan,
    subscriptions,
    invoices,
    credit_notes,
    payments,
    events,
    reports,
    serve,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="abonnement")
