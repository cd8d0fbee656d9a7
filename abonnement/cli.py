"""The command line: parse, call the engine, render. Errors become messages at one boundary."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from abonnement.app import DEFAULT_DATABASE_URL, App
from abonnement.errors import AbonnementError, ConfigError, Problem

__all__ = ["main"]

EXAMPLES = Path(__file__).parent / "examples"


class _Group(click.Group):
    """The one error boundary: an ``AbonnementError`` is a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _print_problems(exc.problems, "text")
            ctx.exit(exc.exit_code)
        except AbonnementError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _print_problems(problems: list[Problem], fmt: str) -> None:
    if fmt == "json":
        payload = {"valid": not problems, "errors": [p.as_json() for p in problems]}
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    for p in problems:
        if fmt == "github":
            message = p.message + (f" ({p.hint})" if p.hint else "")
            message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            click.echo(f"::error file={p.file},line={p.line},col={p.column}::{message}")
        else:
            click.echo(str(p), err=True)
    if fmt == "text":
        noun = "error" if len(problems) == 1 else "errors"
        click.echo(f"{len(problems)} {noun}", err=True)


def _echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, default=str))


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


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--example", type=click.Choice(["coffee"]), default="coffee", show_default=True)
def init(directory: Path, example: str) -> None:
    """Write a working config to DIRECTORY."""
    if directory.exists() and any(directory.iterdir()):
        raise AbonnementError(f"{directory} exists and is not empty; pick a new directory")
    shutil.copytree(EXAMPLES / example, directory, dirs_exist_ok=True)
    click.echo(f"wrote the {example} example to {directory}/", err=True)
    click.echo(f"next: abonnement --config {directory} validate", err=True)


@cli.command()
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
    try:
        catalog = app.config.catalog
    except ConfigError as exc:
        _print_problems(exc.problems, fmt)
        sys.exit(1)
    if fmt == "json":
        _print_problems([], "json")
        return
    counts = ", ".join(f"{k}: {n}" for k, n in catalog.counts().items() if n)
    rules = app.rules
    blocks = len(rules.pricing) + len(rules.triggers) + len(rules.segments)
    counts += f", rules: {blocks}" if blocks else ""
    click.echo(f"{app.config_dir}: valid ({counts}; version {catalog.version})")


@cli.command("test")
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


@cli.command("fmt")
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


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def plugins_command(app: App, as_json: bool) -> None:
    """Installed plugins and what each registers."""
    rows = app.plugins.describe()
    if as_json:
        _echo_json({"plugins": rows})
        return
    for row in rows:
        origin = "built-in" if row["builtin"] else (row["distribution"] or "third-party")
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items())
        click.echo(f"{row['name']}  ({origin})  {what or ', '.join(row['hooks'])}")


_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value: Any) -> date | None:
    return value.date() if value is not None else None


def _as_of(app: App, value: Any) -> date:
    return _day(value) or app.today()


as_of_option = click.option("--as-of", "as_of", type=_DATE, help="Act as of this date.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@cli.command()
@click.option("--contact", "contact_id", required=True, help="The buyer (a contact id).")
@click.option("--item", "items", multiple=True, required=True, metavar="PRODUCT[:QTY]")
@click.option("--start", type=_DATE, help="Billing starts on this date.")
@click.option("--payments", type=click.IntRange(min=1), help="A fixed number of payments.")
@as_of_option
@json_option
@click.pass_obj
def quote(app: App, contact_id: str, items: tuple[str, ...], start: Any, payments: int | None,
          as_of: Any, as_json: bool) -> None:  # fmt: skip
    """The summary of a prospective purchase: due now, future payments, total."""
    from abonnement.views import quote_json

    parsed = [(spec.product, spec.quantity) for spec in _product_specs(items, "--item")]
    # Buying "on the start date" unless told otherwise: a purchase charges its first payment.
    purchase = _day(as_of) or _day(start) or app.today()
    summary = app.quote(contact_id, parsed, purchase, start=_day(start), payments=payments)
    payload = quote_json(summary)
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"due now: {payload['due_now']['total']} {payload['currency']}")
    for future in payload["future_payments"]:
        count = "until cancelled" if future["count"] is None else f"× {future['count']}"
        click.echo(f"then {future['frequency']}: {future['amount']} {count}")
    click.echo(f"total: {payload['total'] or 'n/a (renews until cancelled)'}")


@cli.command()
@as_of_option
@json_option
@click.pass_obj
def apply(app: App, as_of: Any, as_json: bool) -> None:
    """Create or update the declared subscriptions (by id; idempotent)."""
    day = _as_of(app, as_of)
    result = app.apply(day)
    app.notify(day)
    if as_json:
        _echo_json(result)
        return
    click.echo(", ".join(f"{len(v)} {k}" for k, v in result.items()))


@cli.command("run")
@click.option(
    "--as-of", "as_of", type=_DATE, help="Everything due up to this date (default today)."
)
@click.option("--until", type=_DATE, help="Same as --as-of: replay every billing event up to it.")
@click.option("--dry-run", is_flag=True, help="Write nothing; show what would be issued.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (PostgreSQL); each due subscription goes to one of them.",
)
@json_option
@click.pass_obj
def run_command(app: App, as_of: Any, until: Any, dry_run: bool, batch_size: int,
                workers: int, as_json: bool) -> None:  # fmt: skip
    """The billing run: every due event up to the date, in date order.

    Declared subscriptions are applied first (as `abonnement apply` does)."""
    from abonnement.views import invoice_json

    if as_of and until:
        raise click.UsageError("give --as-of or --until, not both")
    day = _day(until) or _as_of(app, as_of)
    # The config is the source of truth: declared subscriptions exist before billing runs
    # (a dry run applies them inside what it rolls back).
    apply_on = _as_of(app, as_of)
    applied = {} if dry_run else app.apply(apply_on)
    dry_apply = apply_on if dry_run else None
    if workers > 1:
        if dry_run:
            raise click.UsageError("a dry run uses one worker")
        summary, invoices = app.run_workers(day, workers, batch_size=batch_size)
    elif sys.stderr.isatty():
        due = app.storage.count_due(day)
        with click.progressbar(length=due, label="billing", file=sys.stderr) as bar:
            summary, invoices = app.run(day, dry_run=dry_run, batch_size=batch_size,
                                        progress=bar.update, apply_on=dry_apply)  # fmt: skip
    else:
        summary, invoices = app.run(day, dry_run=dry_run, batch_size=batch_size,
                                    apply_on=dry_apply)  # fmt: skip
    applied = summary.applied if dry_run else applied
    totals = {c: m.format_amount() for c, m in sorted(summary.totals.items())}
    payload: dict[str, Any] = {
        "until": day.isoformat(), "dry_run": dry_run, "days": summary.days,
        "invoice_count": summary.invoice_count, "totals": totals,
        "status_changes": summary.status_changes, "applied": applied,
        "payments": summary.payments,
    }  # fmt: skip
    if dry_run:
        payload["invoices"] = [invoice_json(i) for i in invoices]
    else:
        payload["notifications"] = app.notify(day)
    if as_json:
        _echo_json(payload)
        return
    verb = "would issue" if dry_run else "issued"
    money = ", ".join(f"{v} {c}" for c, v in totals.items()) or "nothing"
    charges = ", ".join(f"{n} {status}" for status, n in sorted(summary.payments.items()))
    click.echo(f"up to {day}: {verb} {summary.invoice_count} invoices ({money})"
               + (f"; payments: {charges}" if charges else ""))  # fmt: skip


@cli.group()
def subscriptions() -> None:
    """Subscriptions: list, show, create, edit, pause, resume, cancel, delete."""


@subscriptions.command("list")
@click.option("--status", help="Only subscriptions with this status.")
@click.option("--segment", help="Only the members of this segment (a rule block).")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_list(app: App, status: str | None, segment: str | None, as_of: Any,
                       as_json: bool) -> None:  # fmt: skip
    from abonnement.views import subscription_json

    if segment:
        kind, members = app.segment(segment, _as_of(app, as_of))
        if kind != "subscriptions":
            raise AbonnementError(f"segment `{segment}` is of {kind}: use `segments show`")
        subs = [s for s in members if status is None or s.status == status]
    else:
        subs = app.storage.subscriptions(status)
    rows = [subscription_json(s, app.catalog.settings) for s in subs]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:<24} {row['status']:<10} {row['frequency']:<10} "
                   f"next {row['next_payment_date'] or '-':<10}  mrr {row['mrr']} "
                   f"{row['currency']}")  # fmt: skip


@subscriptions.command("show")
@click.argument("subscription_id")
@json_option
@click.pass_obj
def subscriptions_show(app: App, subscription_id: str, as_json: bool) -> None:
    from abonnement.views import subscription_json

    sub = app.storage.subscription(subscription_id)
    if sub is None:
        raise AbonnementError(f"no subscription `{subscription_id}`")
    payload = subscription_json(sub, app.catalog.settings)
    payload["invoices"] = [i["number"] for i in app.storage.invoices(subscription_id)]
    payload["payments"] = [_payment_json(r) for r in app.storage.payments(subscription_id, None)]
    payload["history"] = [
        {"seq": e["seq"], "type": e["type"], "date": e["on_date"].isoformat(),
         **(e["payload"] or {})}
        for e in app.storage.events(subscription_id)
    ]  # fmt: skip
    if as_json:
        _echo_json(payload)
        return
    for key, value in payload.items():
        click.echo(f"{key}: {value}")


def _pairs(values: tuple[str, ...], option: str, convert: Any = str) -> list[tuple[int, Any]]:
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


def _properties(values: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` options; values read as YAML scalars (``true``, ``3``, ``dark``)."""
    import yaml

    out = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{text!r}: expected NAME=VALUE", param_hint="--property")
        out[name] = yaml.safe_load(value) if value else ""
    return out


def _product_specs(values: tuple[str, ...], option: str) -> list[Any]:
    from abonnement.engine.catalog import ItemSpec

    specs = []
    for text in values:
        product, _, quantity = text.partition(":")
        if not product or (quantity and (not quantity.isdigit() or int(quantity) < 1)):
            raise click.BadParameter(f"{text!r}: expected PRODUCT or PRODUCT:QUANTITY (≥ 1)",
                                     param_hint=option)  # fmt: skip
        specs.append(ItemSpec(product=product, quantity=int(quantity or 1)))
    return specs


@subscriptions.command("create")
@click.option("--id", "sub_id", required=True, help="The new subscription's id.")
@click.option("--contact", "contact_id", required=True)
@click.option("--company", "company_id")
@click.option("--billing-contact", "billing_contact_id")
@click.option("--billing-address", type=click.Choice(["same_as_company"]),
              help="Bill to the company's address (default: the contact's).")  # fmt: skip
@click.option("--item", "items", multiple=True, required=True, metavar="PRODUCT[:QTY]")
@click.option("--currency", help="Default: the account's default currency.")
@click.option("--start", type=_DATE, help="First payment date (default: --as-of).")
@click.option("--payments", type=click.IntRange(min=1), help="A fixed number of payments.")
@click.option("--collection", type=click.Choice(["manual", "automatic"]), default="manual",
              show_default=True)  # fmt: skip
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--payment-terms", help="due_on_receipt or net_DAYS (manual collection).")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE")
@click.option("--no-invoices", is_flag=True, help="A record only: invoice creation off (F18).")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_create(app: App, sub_id: str, contact_id: str, company_id: str | None,
                         billing_contact_id: str | None, billing_address: str | None,
                         items: tuple[str, ...],
                         currency: str | None, start: Any, payments: int | None,
                         collection: str, payment_method_id: str | None,
                         payment_terms: str | None, properties: tuple[str, ...],
                         no_invoices: bool, as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Create a subscription from scratch."""
    from abonnement.engine.catalog import AUTO_RENEW, Collection, DeclaredSubscription, Terms
    from abonnement.engine.schedule import AtPurchase, OnDate

    day = _as_of(app, as_of)
    settings = app.catalog.settings
    if no_invoices and not settings.allow_invoice_creation_off:
        raise AbonnementError("settings.subscriptions.allow_invoice_creation_off is false")
    decl = DeclaredSubscription(
        id=sub_id, contact=contact_id, currency=currency or settings.default_currency,
        items=tuple(_product_specs(items, "--item")), company=company_id,
        billing_contact=billing_contact_id, billing_address=billing_address,
        start=OnDate(_day(start)) if start else AtPurchase(),
        terms=Terms(payments=payments) if payments else AUTO_RENEW,
        invoice_creation=not no_invoices,
        collection=Collection(mode=collection, payment_method=payment_method_id,
                              payment_terms=payment_terms),
        properties=_properties(properties),
    )  # fmt: skip
    sub, payload = _after_change(app, app.create_subscription(decl, day), day)
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"{sub.id}: {payload['status']}; first payment {payload['next_payment_date']}")


@subscriptions.command("edit")
@click.argument("subscription_id")
@click.option("--add", multiple=True, metavar="PRODUCT[:QTY]", help="Add a line.")
@click.option("--quantity", multiple=True, metavar="LINE=QTY")
@click.option("--price", multiple=True, metavar="LINE=AMOUNT", help='e.g. 2="20.00 USD"')
@click.option("--discount", multiple=True, metavar="LINE=PERCENT", help="e.g. 1=10%")
@click.option("--clone", multiple=True, type=int, metavar="LINE")
@click.option("--delete", multiple=True, type=int, metavar="LINE")
@click.option("--move", multiple=True, metavar="LINE=NEW_LINE")
@click.option("--payment-method", "payment_method_id", help="Charge this saved method from now.")
@click.option("--contact", "contact_id")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE")
@click.option("--next-payment-date", type=_DATE, help="Move the next payment (and the later).")
@click.option(
    "--prorate",
    is_flag=True,
    help="Settle the rest of the current period on the next invoice (if settings allow).",
)
@as_of_option
@json_option
@click.pass_obj
def subscriptions_edit(app: App, subscription_id: str, add: tuple[str, ...],
                       quantity: tuple[str, ...], price: tuple[str, ...],
                       discount: tuple[str, ...], clone: tuple[int, ...], delete: tuple[int, ...],
                       move: tuple[str, ...], payment_method_id: str | None,
                       contact_id: str | None, properties: tuple[str, ...],
                       next_payment_date: Any, prorate: bool, as_of: Any,
                       as_json: bool) -> None:  # fmt: skip
    """Change lines, payment method, contact or properties, from the next cycle (F20).

    Line changes apply in this order: add, clone, quantity, price, discount, delete, move;
    lines are counted from 1 as `subscriptions show` lists them."""
    from abonnement.engine.edits import ItemOp
    from abonnement.engine.items import resolve_item

    day = _as_of(app, as_of)
    current = app.storage.subscription(subscription_id)
    if current is None:
        raise AbonnementError(f"no subscription `{subscription_id}`")
    added = _product_specs(add, "--add")
    for spec in added:
        if spec.product not in app.catalog.products:
            raise AbonnementError(f"no product `{spec.product}`")
    ops = [ItemOp("add", item=resolve_item(spec, app.catalog, current.currency))
           for spec in added]  # fmt: skip
    ops += [ItemOp("clone", p) for p in clone]
    ops += [ItemOp("quantity", p, v) for p, v in _pairs(quantity, "--quantity", int)]
    ops += [ItemOp("price", p, v) for p, v in _pairs(price, "--price")]
    ops += [ItemOp("discount", p, v) for p, v in _pairs(discount, "--discount")]
    ops += [ItemOp("delete", p) for p in delete]
    ops += [ItemOp("move", p, v) for p, v in _pairs(move, "--move", int)]
    sub = app.edit_subscription(subscription_id, day, ops=ops, payment_method_id=payment_method_id,
                                contact_id=contact_id, prorate=prorate,
                                next_payment_date=_day(next_payment_date),
                                properties=_properties(properties))  # fmt: skip
    sub, payload = _after_change(app, sub, day)
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"{sub.id}: {len(sub.items)} lines, mrr {payload['mrr']} {sub.currency}")


@subscriptions.command("delete")
@click.argument("subscription_id")
@json_option
@click.pass_obj
def subscriptions_delete(app: App, subscription_id: str, as_json: bool) -> None:
    """Delete an expired or canceled subscription; its invoices and history stay."""
    app.delete_subscription(subscription_id)
    if as_json:
        _echo_json({"deleted": subscription_id})
    else:
        click.echo(f"deleted {subscription_id}")


def _after_change(app: App, sub: Any, day: date) -> tuple[Any, dict[str, Any]]:
    """Deliver what a change set off, then the subscription as it is now (a workflow may
    have set fields) and its JSON."""
    from abonnement.views import subscription_json

    app.notify(day)
    sub = app.storage.subscription(sub.id) or sub
    return sub, subscription_json(sub, app.catalog.settings)


def _lifecycle(app: App, subscription_id: str, change: Any, day: date, as_json: bool) -> None:
    sub, payload = _after_change(app, app.storage.change(subscription_id, change), day)
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"{sub.id}: {sub.status}; next payment {payload['next_payment_date'] or '-'}")


@subscriptions.command("pause")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_pause(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """Stop billing; nothing is billed while paused."""
    from abonnement.engine.subscriptions import pause

    day = _as_of(app, as_of)
    _lifecycle(app, subscription_id, lambda sub: pause(sub, day), day, as_json)


@subscriptions.command("resume")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_resume(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """Bill again from the first payment date on or after today."""
    from abonnement.engine.subscriptions import resume

    day = _as_of(app, as_of)
    _lifecycle(app, subscription_id, lambda sub: resume(sub, day), day, as_json)


@subscriptions.command("cancel")
@click.argument("subscription_id")
@click.option("--at-period-end", is_flag=True, help="Bill the current period, then stop.")
@as_of_option
@json_option
@click.pass_obj
def subscriptions_cancel(app: App, subscription_id: str, at_period_end: bool, as_of: Any,
                         as_json: bool) -> None:  # fmt: skip
    """Cancel now (or at the end of the period)."""
    from abonnement.engine.subscriptions import cancel

    day = _as_of(app, as_of)
    _lifecycle(app, subscription_id,
               lambda sub: cancel(sub, day, at_period_end=at_period_end), day, as_json)  # fmt: skip


@cli.group()
def invoices() -> None:
    """Invoices: list, show, render, pay."""


@invoices.command("list")
@click.option("--subscription", "subscription_id")
@click.option("--status")
@json_option
@click.pass_obj
def invoices_list(app: App, subscription_id: str | None, status: str | None,
                  as_json: bool) -> None:  # fmt: skip
    from abonnement.views import invoice_json

    rows = [invoice_json(r) for r in app.storage.invoices(subscription_id, status)]
    for row in rows:
        del row["lines"], row["adjustments"]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        owner = row["subscription_id"] or ""
        click.echo(f"{row['number']:<14} {row['issue_date']} {row['status']:<8} "
                   f"{row['total']:>12} {row['currency']}  {owner}")  # fmt: skip


@invoices.command("show")
@click.argument("number")
@click.option("--explain", is_flag=True, help="Name the rule or setting behind every amount.")
@json_option
@click.pass_obj
def invoices_show(app: App, number: str, explain: bool, as_json: bool) -> None:
    from abonnement.views import invoice_json

    row = app.storage.invoice(number)
    if row is None:
        raise AbonnementError(f"no invoice {number}")
    payload = invoice_json(row)
    if as_json:
        _echo_json(payload)
        return
    cur = payload["currency"]
    click.echo(f"{payload['number']}  {payload['status']}  issued {payload['issue_date']}, "
               f"due {payload['due_date']}")  # fmt: skip
    for line in payload["lines"]:
        click.echo(f"  {line['description']:<40} {line['quantity']:>6} × {line['unit_price']:>10}"
                   f" = {line['amount']:>10} {cur}")  # fmt: skip
        if explain:
            for kind in ("discounts", "fees", "taxes"):
                for adj in line[kind]:
                    rate = f" {adj['rate']}" if adj.get("rate") else ""
                    click.echo(f"      {kind[:-1] if kind != 'taxes' else 'tax'} "
                               f"{adj['rule']}{rate}: {adj['amount']} {cur}")  # fmt: skip
    for adj in payload["adjustments"]:
        click.echo(f"  {adj['kind']} {adj['rule']} (invoice): {adj['amount']} {cur}")
    for key in ("subtotal", "discount_total", "fee_total", "tax_total", "total", "amount_due"):
        click.echo(f"  {key:<15} {payload[key]:>12} {cur}")


@invoices.command("render")
@click.argument("number")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html",
              show_default=True)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of standard output.")  # fmt: skip
@click.pass_obj
def invoices_render(app: App, number: str, fmt: str, output: str | None) -> None:
    """The customer-facing invoice document, in its language and locale."""
    document = app.render_invoice(number, fmt)
    if output:
        try:
            Path(output).write_bytes(document)
        except OSError as exc:
            raise AbonnementError(f"cannot write {output}: {exc.strerror}") from None
        click.echo(f"wrote {output}", err=True)
    elif fmt == "pdf" and sys.stdout.isatty():
        raise AbonnementError("a PDF is binary: write it with -o FILE (or pipe it)")
    else:
        sys.stdout.buffer.write(document)


@invoices.command("pay")
@click.argument("number")
@click.option("--amount", help="Default: the amount due.")
@click.option("--method", default="manual", show_default=True)
@click.option("--card", help="Pay online now with this card token (through the processor).")
@as_of_option
@json_option
@click.pass_obj
def invoices_pay(app: App, number: str, amount: str | None, method: str, card: str | None,
                 as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Record a payment made outside the processor, or pay online with --card."""
    from decimal import Decimal, InvalidOperation

    if card:
        result = app.pay_online(number, card, _as_of(app, as_of))
        app.notify(_as_of(app, as_of))
        payload = {**result, "amount_paid": str(result["amount_paid"])}
        _echo_json(payload) if as_json else click.echo(f"{number}: paid")
        return

    row = app.storage.invoice(number)
    if row is None:
        raise AbonnementError(f"no invoice {number}")
    try:
        value = Decimal(amount) if amount else row["total"] - row["amount_paid"]
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not an amount", param_hint="--amount") from None
    result = app.storage.pay_invoice(number, value, _as_of(app, as_of), method)
    app.notify(_as_of(app, as_of))
    payload = {**result, "amount_paid": str(result["amount_paid"])}
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"{number}: {payload['status']} (paid {payload['amount_paid']})")


@cli.command()
@click.argument("link_id")
@click.option("--contact", "contact_id", required=True)
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--card", help="A card token to charge (and save).")
@as_of_option
@json_option
@click.pass_obj
def checkout(app: App, link_id: str, contact_id: str, payment_method_id: str | None,
             card: str | None, as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Buy a payment link: charge what is due now, create the grouped subscriptions."""
    result = app.checkout(link_id, contact_id, _as_of(app, as_of), card=card,
                          payment_method_id=payment_method_id)  # fmt: skip
    app.notify(_as_of(app, as_of))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['invoice']}: {result['total']} {result['currency']} {result['payment']};"
               f" subscriptions: {', '.join(result['subscriptions']) or 'none'}")  # fmt: skip


@cli.group()
def payments() -> None:
    """Payment attempts: list, retry, refund."""


def _payment_json(row: dict[str, Any]) -> dict[str, Any]:
    from abonnement.engine.money import Money

    return {
        "id": row["id"], "invoice_number": row["invoice_number"],
        "subscription_id": row["subscription_id"], "attempt": row["attempt"],
        "amount": Money(row["amount"], row["currency"]).format_amount(),
        "currency": row["currency"], "method": row["method"], "status": row["status"],
        "failure_code": row["failure_code"], "date": row["on_date"].isoformat(),
    }  # fmt: skip


@payments.command("list")
@click.option("--subscription", "subscription_id")
@click.option("--invoice", "invoice_number")
@json_option
@click.pass_obj
def payments_list(app: App, subscription_id: str | None, invoice_number: str | None,
                  as_json: bool) -> None:  # fmt: skip
    rows = [_payment_json(r) for r in app.storage.payments(subscription_id, invoice_number)]
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']:>5} {r['date']} {r['invoice_number']:<14} #{r['attempt']} "
                   f"{r['amount']:>10} {r['currency']} {r['method']:<5} {r['status']:<10} "
                   f"{r['failure_code'] or ''}")  # fmt: skip


@payments.command("retry")
@click.argument("payment_id", type=int)
@as_of_option
@json_option
@click.pass_obj
def payments_retry(app: App, payment_id: int, as_of: Any, as_json: bool) -> None:
    """Retry the invoice of a payment now (a limited number of manual retries)."""
    result = app.retry_payment(payment_id, _as_of(app, as_of))
    app.notify(_as_of(app, as_of))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['invoice']} attempt {result['attempt']}: {result['status']}")


@payments.command("refund")
@click.argument("payment_id", type=int)
@click.option("--amount", help="Default: everything not refunded yet.")
@as_of_option
@json_option
@click.pass_obj
def payments_refund(app: App, payment_id: int, amount: str | None, as_of: Any,
                    as_json: bool) -> None:  # fmt: skip
    """Refund a payment; the subscription is left as it is."""
    result = app.refund(payment_id, amount, _as_of(app, as_of))
    app.notify(_as_of(app, as_of))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"refunded {result['amount']} {result['currency']} of {result['invoice']}")


@cli.group("payment-methods")
def payment_methods() -> None:
    """Payment-method update links."""


@payment_methods.command("update-link")
@click.argument("subscription_id")
@as_of_option
@json_option
@click.pass_obj
def update_link(app: App, subscription_id: str, as_of: Any, as_json: bool) -> None:
    """A signed, expiring link for the buyer to save a new payment method."""
    result = app.update_link(subscription_id, _as_of(app, as_of))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['url']} (valid through {result['expires_at']})")


@payment_methods.command("update")
@click.argument("token")
@click.option("--card", required=True, help="The new card token.")
@as_of_option
@json_option
@click.pass_obj
def update_method(app: App, token: str, card: str, as_of: Any, as_json: bool) -> None:
    """Save a new method through an update link and collect what is past due."""
    result = app.update_payment_method(token, card, _as_of(app, as_of))
    app.notify(_as_of(app, as_of))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['subscription']}: {result['status']}; collected "
               f"{', '.join(result['collected']) or 'nothing'}")  # fmt: skip


@cli.command()
@click.option("--months", type=click.IntRange(1, 120), default=12, show_default=True)
@as_of_option
@json_option
@click.pass_obj
def forecast(app: App, months: int, as_of: Any, as_json: bool) -> None:
    """The invoices the next N months will issue, by month and currency; writes nothing."""
    day = _as_of(app, as_of)
    rows = app.forecast(day, months)
    if as_json:
        _echo_json({"as_of": day.isoformat(), "months": months, "forecast": rows})
        return
    for row in rows:
        click.echo(f"{row['month']}  {row['invoices']:>6} invoices  {row['total']:>12} "
                   f"{row['currency']}")  # fmt: skip


@cli.command()
@click.argument("metric", type=click.Choice(["mrr", "arr", "churn", "active", "movements"]))
@as_of_option
@click.option("--from", "from_", type=_DATE, help="First month of a monthly series.")
@click.option("--to", type=_DATE, help="Last month of the series (default: --as-of).")
@click.option("--currency", help="Default: the account's default currency.")
@click.option("--csv", "as_csv", is_flag=True, help="The series as CSV.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw the series into a PNG file (needs abonnement[chart]).",
)
@json_option
@click.pass_obj
def report(app: App, metric: str, as_of: Any, from_: Any, to: Any, currency: str | None,
           as_csv: bool, chart: Path | None, as_json: bool) -> None:  # fmt: skip
    """MRR, ARR, active subscriptions, customer churn (%) or MRR movements (new, expansion,
    contraction, churned) — at a date, or by month."""
    from abonnement.engine.analytics import month_starts
    from abonnement.engine.analytics import report as compute

    day = _as_of(app, as_of)
    currency = currency or app.catalog.settings.default_currency
    if from_ and (_day(to) or day) < _day(from_):
        raise click.UsageError("--from is after --to (or --as-of)")
    months = month_starts(_day(from_), _day(to) or day) if from_ else []
    value, series = compute(metric, app.storage.histories(currency), app.catalog.settings,
                            currency=currency, as_of=day, months=months)  # fmt: skip

    def text(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: text(x) for k, x in v.items()}
        return v.format_amount() if hasattr(v, "format_amount") else (
            str(v) if not isinstance(v, int) else v)  # fmt: skip

    rows = [{"month": m.strftime("%Y-%m"), "value": text(v)} for m, v in series]
    if chart is not None:
        _draw(chart, metric, currency, series)
    if as_csv:
        columns = list(text(value)) if metric == "movements" else ["value"]
        click.echo(",".join(["month", *columns]))
        for row in rows:
            cells = row["value"] if metric == "movements" else {"value": row["value"]}
            click.echo(",".join([row["month"], *(str(cells[c]) for c in columns)]))
        return
    payload = {"metric": metric, "currency": currency, "as_of": day.isoformat(),
               "value": text(value), "series": rows}  # fmt: skip
    if as_json:
        _echo_json(payload)
        return

    def shown(v: Any) -> str:
        if isinstance(v, dict):
            return "  ".join(f"{k} {x}" for k, x in v.items()) + f" {currency}"
        return f"{v}" + ("%" if metric == "churn" else "" if metric == "active" else f" {currency}")

    click.echo(f"{metric} on {day}: {shown(payload['value'])}")
    for row in rows:
        click.echo(f"  {row['month']}  {shown(row['value'])}")


def _draw(path: Path, metric: str, currency: str, series: list) -> None:
    """A bar chart of a monthly series (movements: gains up, losses down, net as a line)."""
    if not series:
        raise click.UsageError("--chart draws a series: give --from (and --to)")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no screen needed
        from matplotlib import pyplot
    except ImportError:
        raise AbonnementError("charts need matplotlib: pip install 'abonnement[chart]'") from None
    labels = [month.strftime("%Y-%m") for month, _ in series]
    figure, axes = pyplot.subplots(figsize=(max(6, len(labels) * 0.6), 4), dpi=100)
    if metric == "movements":
        # drawing only, never money
        def column(key: str, sign: int) -> list[float]:
            return [sign * float(v[key].amount) for _, v in series]

        axes.bar(labels, column("new", 1), label="new", color="#2e7d32")
        axes.bar(labels, column("expansion", 1), bottom=column("new", 1), label="expansion",
                 color="#81c784")  # fmt: skip
        axes.bar(labels, column("churned", -1), label="churned", color="#c62828")
        axes.bar(labels, column("contraction", -1), bottom=column("churned", -1),
                 label="contraction", color="#ef9a9a")  # fmt: skip
        axes.plot(labels, column("net", 1), color="#222", marker="o", label="net")
        axes.axhline(0, color="#999", linewidth=0.8)
        axes.legend(fontsize="small")
    else:
        values = [float(getattr(v, "amount", v)) for _, v in series]  # drawing only
        axes.bar(labels, values, color="#3b6ea5")
    unit = {"churn": "%", "active": "subscriptions"}.get(metric, currency)
    axes.set_title(f"{metric.upper() if metric != 'movements' else 'MRR movements'} by month "
                   f"({unit})")  # fmt: skip
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


@cli.command()
@click.argument("kind", type=click.Choice(["quote", "deal"]))
@click.argument("record_id")
@click.option("--payment-method", "payment_method_id", help="A method the contact saved.")
@click.option("--card", help="Charge this card token now.")
@as_of_option
@json_option
@click.pass_obj
def convert(app: App, kind: str, record_id: str, payment_method_id: str | None, card: str | None,
            as_of: Any, as_json: bool) -> None:  # fmt: skip
    """Create the subscriptions of a published quote or a deal; charge what is due now when a
    method is given, else invoice it with the account's payment terms."""
    day = _as_of(app, as_of)
    result = app.convert(kind, record_id, day, card=card, payment_method_id=payment_method_id)
    app.notify(day)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{kind} {record_id}: invoice {result['invoice']} ({result['total']} "
               f"{result['currency']}, {result['payment'] or 'open'}); subscriptions "
               f"{', '.join(result['subscriptions']) or '-'}")  # fmt: skip


@cli.group()
def segments() -> None:
    """Segments: named queries over subscriptions or contacts, from the rule files."""


@segments.command("show")
@click.argument("name")
@as_of_option
@json_option
@click.pass_obj
def segments_show(app: App, name: str, as_of: Any, as_json: bool) -> None:
    """The members of a segment on a date (default today)."""
    day = _as_of(app, as_of)
    kind, members = app.segment(name, day)
    ids = [m.id for m in members]
    if as_json:
        _echo_json({"segment": name, "of": kind, "as_of": day.isoformat(), "members": ids})
        return
    click.echo(f"{name} ({kind}, {day}): {len(ids)}")
    for member in ids:
        click.echo(f"  {member}")


@cli.group()
def db() -> None:
    """The database."""


@db.command()
@click.pass_obj
def upgrade(app: App) -> None:
    """Apply the database migrations."""
    from abonnement.plugins.storage.sql import SqlStorage

    revision = SqlStorage(app.database_url, migrate=False).upgrade()
    click.echo(f"database at migration {revision}")


def main() -> None:
    cli(prog_name="abonnement")
