"""The command-line reference of ``docs/cli.md``, generated from the click commands.

``python -m abonnement.cli.reference > docs/cli.md`` rewrites it; a test fails when the file
and the commands drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import click

from abonnement.cli.common import Exit

__all__ = ["render_reference"]

_INTRO = """\
# Command-line reference

Generated from the commands (`python -m abonnement.cli.reference > docs/cli.md`); every
command also answers `--help`.

## For scripts and schedulers

- **`--json`** on every command prints one JSON document on standard output. An error is
  `{"error": {"code": "…", "message": "…"}}` (plus `kind` and `id` for `not_found`, `problems`
  for `invalid_config`, `failure_code` for `payment_declined`); a bad option is
  `{"error": {"code": "usage", …}}`. Codes never change once published.
- **Exit codes:**

| code | meaning |
| --- | --- |
{exit_codes}

  `plan --detailed-exitcode` uses 2 for "changes to apply", as Terraform does.
- **Logging:** what a command does (invoices issued, charges and their outcomes, status
  changes, deliveries, failures) is logged on standard error: INFO by default, `-q` warnings
  and errors only, `-v` debugging detail, `--log-format json` one JSON object per line
  (`time`, `level`, `logger`, `message` and the record's fields). Secrets (card tokens, keys,
  signed links) are never logged.
- **Listings and CSV:** every listing (`… list`, `forecast`, `report`, `segments show`,
  `plugins`) prints a table: a header row, then one row per line, each column as wide as its
  widest cell, money and counts right-aligned. `--csv` prints the same rows as CSV instead
  (written by Python's `csv` module: a header row of the JSON keys, `\n` line ends, cells
  with commas, quotes or line breaks quoted). Spreadsheets run a cell that starts with `=`,
  `+`, `-`, `@`, a tab or a carriage return as a formula, so such a text cell is written with
  a leading `'` (a contact named `=HYPERLINK(…)` is the text `'=HYPERLINK(…)`, `-2+3` is
  `'-2+3`); a number in a money or count column (`-12.50`) stays a number. `show` commands
  print labelled fields and their lines as tables; `--json` has everything, unrounded by
  layout.
- **Progress:** the long steps (`apply`, `run`, `forecast`, `plan`, `report`) draw a progress
  bar on standard error, only when standard error is a terminal and neither `--json`, `-q` nor
  `--log-format json` is given; a pipe, a file, cron and systemd never see it.
- **Where things live:** without `--config` (or `ABONNEMENT_CONFIG`), the config directory is
  the nearest one, from the current directory upward, that holds an `abonnement.yaml`. Without
  `--db` (or `ABONNEMENT_DATABASE_URL`), the database is `abonnement.db` in the config
  directory; the test processor's ledger and the charge lock sit beside it.
"""

_EXIT_TEXT = {
    Exit.OK: "done",
    Exit.REFUSED: "refused or invalid: a config error, a failed check (`validate`, `test`, "
    "`fmt --check`), a state that refuses the command",
    Exit.USAGE: "usage: an unknown command or option, a bad option value",
    Exit.NOT_FOUND: "not found: a subscription, invoice, contact… named on the command line",
    Exit.PARTIAL: "partial: `run` finished, but a subscription could not be billed (set "
    "aside; the next run tries again) or a message was given up (`failures` in its output)",
}


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def _option_row(param: click.Parameter, ctx: click.Context) -> str | None:
    """A table row for an option (arguments are in the usage line; --help goes without
    saying)."""
    record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
    if record is None or "--help" in param.opts:
        return None
    names, text = (part.replace("|", "\\|") for part in record)  # inside a table cell
    return f"| `{names}` | {text} |"


def _section(path: str, command: click.Command, parent: click.Context) -> str:
    ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent)
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `{path}`", "", "```", f"{path} {usage}".rstrip(), "```", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help), ""]
    rows = [row for p in command.get_params(ctx) if (row := _option_row(p, ctx))]
    if rows:
        lines += ["| option | |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def render_reference() -> str:
    """docs/cli.md: the scripting contract, then every command with its usage and options."""
    from abonnement.cli import cli

    exit_codes = "\n".join(f"| {code.value} | {_EXIT_TEXT[code]} |" for code in Exit)
    root = click.Context(cli, info_name="abonnement")
    parts = [_INTRO.replace("{exit_codes}", exit_codes), _section("abonnement", cli, root)]
    for path, command in _commands(cli, "abonnement"):
        parts.append(_section(path, command, root))
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
