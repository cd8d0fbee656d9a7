"""Reports and segments: MRR, ARR, active, churn, movements; segment members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import DATE, as_of_option, day, day_or_today, echo_json, json_option
from abonnement.errors import AbonnementError
from abonnement.operations import queries

MAX_CHART_MONTHS = 240  # twenty years of bars stay readable (and quick to draw)


@click.command()
@click.argument(
    "metric",
    type=click.Choice(["mrr", "arr", "churn", "subscription_churn", "active", "movements"]),
)
@as_of_option
@click.option("--from", "from_", type=DATE, help="First month of a monthly series.")
@click.option("--to", type=DATE, help="Last month of the series (default: --as-of).")
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
    """MRR, ARR, active subscriptions, customer churn (%), subscription churn (%) or MRR
    movements (new, expansion, contraction, churned) — at a date, or by month."""
    from abonnement.engine.analytics import month_starts

    on = day_or_today(app, as_of)
    if from_ and (day(to) or on) < day(from_):
        raise click.UsageError("--from is after --to (or --as-of)")
    months = month_starts(day(from_), day(to) or on) if from_ else []
    if chart is not None and len(months) > MAX_CHART_MONTHS:
        raise click.UsageError(f"--chart draws at most {MAX_CHART_MONTHS} months; this "
                               f"series has {len(months)}: narrow --from and --to")  # fmt: skip
    from abonnement.views import report_json

    currency, value, series = queries.report(app.context, metric, on, currency=currency,
                                             months=months)  # fmt: skip
    payload = report_json(metric, currency, on, value, series)
    rows = payload["series"]
    if chart is not None:
        _draw(chart, metric, currency, series)
    if as_csv:
        columns = list(payload["value"]) if metric == "movements" else ["value"]
        click.echo(",".join(["month", *columns]))
        for row in rows:
            cells = row["value"] if metric == "movements" else {"value": row["value"]}
            click.echo(",".join([row["month"], *(str(cells[c]) for c in columns)]))
        return
    if as_json:
        echo_json(payload)
        return

    def shown(v: Any) -> str:
        if isinstance(v, dict):
            return "  ".join(f"{k} {x}" for k, x in v.items()) + f" {currency}"
        percent = metric in ("churn", "subscription_churn")
        return f"{v}" + ("%" if percent else "" if metric == "active" else f" {currency}")

    click.echo(f"{metric} on {on}: {shown(payload['value'])}")
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
    unit = {"churn": "%", "subscription_churn": "%", "active": "subscriptions"}.get(
        metric, currency
    )
    axes.set_title(f"{metric.upper() if metric != 'movements' else 'MRR movements'} by month "
                   f"({unit})")  # fmt: skip
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as exc:  # a missing directory, a read-only place
        raise AbonnementError(f"--chart: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)


@click.group()
def segments() -> None:
    """Segments: named queries over subscriptions or contacts, from the rule files."""


@segments.command("show")
@click.argument("name")
@as_of_option
@json_option
@click.pass_obj
def segments_show(app: App, name: str, as_of: Any, as_json: bool) -> None:
    """The members of a segment on a date (default today)."""
    from abonnement.views import segment_json

    on = day_or_today(app, as_of)
    kind, members = queries.segment(app.context, name, on)
    payload = segment_json(name, kind, on, members)
    ids = payload["members"]
    if as_json:
        echo_json(payload)
        return
    click.echo(f"{name} ({kind}, {on}): {len(ids)}")
    for member in ids:
        click.echo(f"  {member}")


COMMANDS = (report, segments)
