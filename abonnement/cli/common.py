"""What the commands share: date and JSON options, option parsers, JSON and problem output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from enum import IntEnum
from typing import Any

import click

from abonnement.app import App
from abonnement.errors import Problem

__all__ = [
    "DATE",
    "JSON_MODE",
    "LOG_JSON",
    "QUIET",
    "Exit",
    "as_of_option",
    "day",
    "day_or_today",
    "echo_json",
    "json_option",
    "pairs",
    "print_problems",
    "product_specs",
    "properties",
]


class Exit(IntEnum):
    """The exit codes scripts and schedulers branch on (docs/cli.md). An error's own code is
    ``AbonnementError.exit_code``; these are the values it and the commands use."""

    OK = 0
    REFUSED = 1  # invalid input or config, a state that refuses the command, a failed check
    USAGE = 2  # a bad option or argument (click's own code)
    NOT_FOUND = 3  # a record named on the command line does not exist
    PARTIAL = 4  # done, but something could not be billed or delivered (see the output)


# set in ``click.Context.meta`` (shared by a command and its groups) when --json is given,
# so the error boundary answers in JSON too
JSON_MODE = "abonnement.json"
# set by the root command: -q, and --log-format json (no progress bar for either)
QUIET = "abonnement.quiet"
LOG_JSON = "abonnement.log_json"


class _Date(click.DateTime):
    """``YYYY-MM-DD`` within ``engine.bounds`` (1900-01-01 to 2099-12-31): a date outside is a
    usage error, not an overflow deep in a schedule."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from abonnement.engine.bounds import day_problem

        if isinstance(value, str) and not value.isascii():  # strptime takes ２０２６ as 2026
            self.fail(f"{value!r} is not a date in YYYY-MM-DD (ASCII digits)", param, ctx)
        converted = super().convert(value, param, ctx)
        problem = day_problem(converted.date())
        if problem:
            self.fail(problem, param, ctx)
        return converted


DATE = _Date(formats=["%Y-%m-%d"])


def _json_mode(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_MODE] = True
    return value


as_of_option = click.option("--as-of", "as_of", type=DATE, help="Act as of this date.")
json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_json_mode, help="Print one JSON document."
)


def day(value: Any) -> date | None:
    """A ``DATE`` option's value as a date (None stays None)."""
    return value.date() if value is not None else None


def day_or_today(app: App, value: Any) -> date:
    """The date given, else today in the account's time zone (read once per command)."""
    return day(value) or app.context.today()


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str))


def print_problems(problems: list[Problem], fmt: str, warnings: Sequence[Problem] = ()) -> None:
    """Config problems (and warnings, which leave it valid) as text (stderr), JSON or
    GitHub workflow commands (stdout)."""
    if fmt == "json":
        payload = {"valid": not problems, "errors": [p.as_json() for p in problems],
                   "warnings": [w.as_json() for w in warnings]}  # fmt: skip
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    for p in (*problems, *warnings):
        if fmt == "github":
            message = _github_data(p.message + (f" ({p.hint})" if p.hint else ""))
            where = ",".join(f"{k}={_github_property(str(v))}" for k, v in
                             (("file", p.file), ("line", p.line), ("col", p.column)))  # fmt: skip
            click.echo(f"::{p.severity} {where}::{message}")
        else:
            click.echo(str(p), err=True)
    if fmt == "text" and problems:
        noun = "error" if len(problems) == 1 else "errors"
        click.echo(f"{len(problems)} {noun}", err=True)
    if fmt == "text" and warnings:
        noun = "warning" if len(warnings) == 1 else "warnings"
        click.echo(f"{len(warnings)} {noun}", err=True)


def _github_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner reads it back."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    """A workflow command's property value (``file=…``): the message's escapes, and ``:`` and
    ``,``, which would end the value (a path on Windows, a file name with a comma)."""
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def pairs(values: tuple[str, ...], option: str, convert: Any = str) -> list[tuple[int, Any]]:
    """``POS=VALUE`` options as (position, value)."""
    out = []
    for text in values:
        position, sep, value = text.partition("=")
        if not sep or not position.isdigit():
            raise click.BadParameter(f"{text!r}: expected LINE=VALUE, e.g. 2=3", param_hint=option)
        try:
            out.append((int(position), convert(value)))
        except ValueError:
            raise click.BadParameter(f"{text!r}: bad value {value!r}", param_hint=option) from None
    return out


def properties(values: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` options; values read as YAML scalars (``true``, ``3``, ``dark``)."""
    import yaml

    out = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{text!r}: expected NAME=VALUE", param_hint="--property")
        out[name] = yaml.safe_load(value) if value else ""
    return out


def product_specs(values: tuple[str, ...], option: str) -> list[Any]:
    """``PRODUCT[:QTY]`` options as item specs."""
    from abonnement.engine.catalog import ItemSpec

    specs = []
    for text in values:
        product, _, quantity = text.partition(":")
        if not product or (quantity and (not quantity.isdigit() or int(quantity) < 1)):
            raise click.BadParameter(f"{text!r}: expected PRODUCT or PRODUCT:QUANTITY (≥ 1)",
                                     param_hint=option)  # fmt: skip
        specs.append(ItemSpec(product=product, quantity=int(quantity or 1)))
    return specs


def echo_document(number: str, fmt: str, document: bytes, output: str | None,
                  as_json: bool) -> None:  # fmt: skip
    """A rendered document (an invoice, a credit note) written to ``output``, or to standard
    output: with ``as_json`` ``{"number", "format", "output"}`` once written, else the
    document in ``"content"`` (HTML) or ``"content_base64"`` (PDF). A PDF is never written
    to a terminal."""
    import base64
    import sys
    from pathlib import Path

    from abonnement.errors import AbonnementError, InvalidInput

    if output:
        try:
            Path(output).write_bytes(document)
        except OSError as exc:
            raise AbonnementError(f"cannot write {output}: {exc.strerror}") from None
        if as_json:
            echo_json({"number": number, "format": fmt, "output": output})
        else:
            click.echo(f"wrote {output}", err=True)
    elif as_json:
        body = ({"content": document.decode("utf-8")} if fmt == "html" else
                {"content_base64": base64.b64encode(document).decode("ascii")})  # fmt: skip
        echo_json({"number": number, "format": fmt, **body})
    elif fmt == "pdf" and sys.stdout.isatty():
        raise InvalidInput("a PDF is binary: write it with -o FILE (or pipe it)")
    else:
        sys.stdout.buffer.write(document)
