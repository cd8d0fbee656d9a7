"""``abonnement plan``: what ``apply`` would do and its money effect, for a pull request."""

from __future__ import annotations

from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import as_of_option, day_or_today, echo_json, json_option
from abonnement.cli.progress import progress_bar
from abonnement.operations import plan as planning

_MARK = {"create": "+", "change": "~", "unchanged": "=", "no_longer_declared": "-",
         "deleted": "!"}  # fmt: skip


@click.command("plan")
@click.option("--months", type=click.IntRange(1, 120), default=3, show_default=True,
              help="Compare the invoices of this many months.")  # fmt: skip
@click.option("--prorate", is_flag=True, help="Plan `apply --prorate`.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text",
              show_default=True, help="markdown: tables, for a pull request comment.")  # fmt: skip
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to apply, 2 when there are changes (1: error).",
)
@as_of_option
@json_option
@click.pass_obj
def plan(app: App, months: int, prorate: bool, fmt: str, detailed_exitcode: bool, as_of: Any,
         as_json: bool) -> None:  # fmt: skip
    """Show what `abonnement apply` would do, and what it does to the invoices of the next
    months (before: the database under the config applied last; after: this config applied).
    Writes nothing."""
    with progress_bar("planning") as progress:
        result = planning.plan(app.context, day_or_today(app, as_of), months, prorate=prorate,
                               progress=progress)  # fmt: skip
    if as_json:
        echo_json(result.as_json())
    elif fmt == "markdown":
        click.echo(_markdown(result, app))
    else:
        click.echo(_text(result, app))
    if detailed_exitcode and result.has_changes:
        click.get_current_context().exit(2)


def _when(d: Any, app: App) -> str:
    if d.action == "create":
        return f"create, first payment {d.effective}"
    if d.action == "change" and d.waits_for:
        return (f"change from {d.effective} (the payment on {d.waits_for} is inside the "
                f"{app.catalog.settings.edit_freeze_days}-day freeze window)")  # fmt: skip
    if d.action == "change":
        return f"change from {d.effective}" if d.effective else "change (no payment scheduled)"
    if d.action == "no_longer_declared":
        return "no longer declared: left as it is (`apply --prune` cancels it at period end)"
    if d.action == "deleted":
        return "declared, but deleted from the database: left alone"
    return "unchanged"


def _summary(result: planning.Plan) -> str:
    counts: dict[str, int] = {}
    for d in result.differences:
        counts[d.action] = counts.get(d.action, 0) + 1
    parts = [f"{counts[k]} {k.replace('_', ' ')}" for k in _MARK if counts.get(k)]
    moved = [t for t in result.totals if t.change]
    money = "; ".join(f"{planning.signed_amount(t.change, t.currency)} {t.currency}"
                      for t in moved) or "no change"  # fmt: skip
    verdict = "changes to apply" if result.has_changes else "nothing to apply"
    return f"{verdict}: {', '.join(parts) or 'nothing declared'}; invoices {money}"


def _baseline(result: planning.Plan) -> str:
    if result.baseline is None:
        return "before: the database as it is (no applied config kept yet)"
    return (f"before: the config applied on {result.baseline['applied_on']} "
            f"({result.baseline['version']})")  # fmt: skip


def _text(result: planning.Plan, app: App) -> str:
    lines = [f"Plan as of {result.as_of}: invoices up to {result.until} ({result.months} "
             f"months); {_baseline(result)}", ""]  # fmt: skip
    for d in result.differences:
        where = f"  ({d.declared_at})" if d.declared_at else ""
        lines.append(f"{_MARK[d.action]} {d.id}: {_when(d, app)}{where}")
        lines += [f"    {c.field}: {c.old} → {c.new}" for c in d.changes]
    lines += ["", f"{'invoices':<24} {'':>4} {'before':>14} {'after':>14} {'change':>12}"]
    for m in [*result.money, *result.totals]:
        data = m.as_json()
        before, after = data["before"]["total"], data["after"]["total"]
        lines.append(f"{m.subject:<24} {m.currency:>4} {before:>9} ({m.before_count:>2}) "
                     f"{after:>9} ({m.after_count:>2}) {data['change']:>12}")  # fmt: skip
    return "\n".join([*lines, "", _summary(result)])


def _markdown(result: planning.Plan, app: App) -> str:
    lines = [f"### abonnement plan — as of {result.as_of}", "",
             f"Invoices up to {result.until} ({result.months} months); {_baseline(result)}.", "",
             "| | subscription | what | from |", "|---|---|---|---|"]  # fmt: skip
    for d in result.differences:
        what = _when(d, app).split(",")[0].split(" from ")[0].split(":")[0]
        since = d.effective.isoformat() if d.effective and d.action in ("create", "change") else ""
        lines.append(f"| {_MARK[d.action]} | `{d.id}` | {what} | {since} |")
    changed = [d for d in result.differences if d.changes]
    if changed:
        lines += ["", "| subscription | field | old | new |", "|---|---|---|---|"]
        lines += [f"| `{d.id}` | `{c.field}` | {c.old} | {c.new} |"
                  for d in changed for c in d.changes]  # fmt: skip
    lines += ["", "| invoices | currency | before | after | change |", "|---|---|--:|--:|--:|"]
    for m in [*result.money, *result.totals]:
        data = m.as_json()
        name = "**total**" if m.subject == "total" else f"`{m.subject}`"
        before, after = data["before"]["total"], data["after"]["total"]
        lines.append(f"| {name} | {m.currency} | {before} ({m.before_count}) "
                     f"| {after} ({m.after_count}) | {data['change']} |")  # fmt: skip
    return "\n".join([*lines, "", _summary(result)])


COMMANDS = (plan,)
