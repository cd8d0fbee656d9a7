"""Reports and segments: MRR, ARR, active, churn, movements; segment members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import DATE, as_of_option, day, day_or_today, echo_json, json_option
from abonnement.cli.progress import progress_bar
from abonnement.cli.tables import Column, csv_option, echo_rows, text
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
@csv_option
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

    with progress_bar("report", "subscriptions read") as progress:
        currency, value, series = queries.report(app.context, metric, on, currency=currency,
                                                 months=months, progress=progress)  # fmt: skip
    payload = report_json(metric, currency, on, value, series)
    rows = payload["series"]
    if chart is not None:
        _draw(chart, metric, currency, series)
    if as_json:
        echo_json(payload)
        return
    unit = {"churn": "%", "subscription_churn": "%", "active": ""}.get(metric, currency)
    if metric == "movements":
        columns = [Column("month"), *(Column(k, lambda r, k=k: r["value"][k], number=True)
                                      for k in payload["value"])]  # fmt: skip
    else:
        columns = [Column("month"), Column("value", number=True,
                                           title=f"{metric.upper()} {unit}".strip())]  # fmt: skip
    if as_csv:  # the series; with no --from, one row: the value on --as-of
        echo_rows(columns, rows or [{"month": on.isoformat(), "value": payload["value"]}],
                  as_csv=True)  # fmt: skip
        return

    def shown(v: Any) -> str:
        if isinstance(v, dict):
            return "  ".join(f"{k} {x}" for k, x in v.items()) + f" {currency}"
        return f"{text(v)}{'%' if unit == '%' else f' {unit}' if unit else ''}"

    click.echo(f"{metric} on {on}: {shown(payload['value'])}")
    if rows:
        echo_rows(columns, rows)


_LABEL_BOX = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"}  # readable over a line


def _draw(path: Path, metric: str, currency: str, series: list) -> None:
    """A bar chart of a monthly series (movements: gains up, losses down, net as a line),
    with its axes named, each bar's value written on it, room between the bars and the frame,
    and the legend beside the plot rather than over it."""
    if not series:
        raise click.UsageError("--chart draws a series: give --from (and --to)")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no screen needed
        from matplotlib import pyplot
    except ImportError:
        raise AbonnementError("charts need matplotlib: pip install 'abonnement[chart]'") from None
    labels = [month.strftime("%Y-%m") for month, _ in series]
    unit = {"churn": "%", "subscription_churn": "%", "active": "subscriptions"}.get(
        metric, currency
    )
    movements = metric == "movements"
    width = max(6.0, len(labels) * (0.9 if movements else 0.7)) + (1.6 if movements else 0)
    # constrained layout keeps the labels and the legend inside a figure of a fixed size
    figure, axes = pyplot.subplots(figsize=(width, 4.5), dpi=100, layout="constrained")
    figure.get_layout_engine().set(w_pad=0.15, h_pad=0.15)  # inches of margin all round
    if movements:
        # drawing only, never money
        def column(key: str, sign: int = 1) -> list[float]:
            return [sign * float(v[key].amount) for _, v in series]

        def text(key: str) -> list[str]:
            return [v[key].format_amount() if v[key] else "" for _, v in series]

        axes.bar(labels, column("new"), label="new", color="#2e7d32")
        axes.bar(labels, column("expansion"), bottom=column("new"), label="expansion",
                 color="#81c784")  # fmt: skip
        axes.bar(labels, column("churned", -1), label="churned", color="#c62828")
        axes.bar(labels, column("contraction", -1), bottom=column("churned", -1),
                 label="contraction", color="#ef9a9a")  # fmt: skip
        gains = [a + b for a, b in zip(column("new"), column("expansion"), strict=True)]
        losses = [a + b for a, b in zip(column("churned", -1), column("contraction", -1),
                                        strict=True)]  # fmt: skip
        # one value per stack: the month's gains above it, its losses below it
        for x, (up, down) in enumerate(zip(gains, losses, strict=True)):
            if up:
                axes.annotate(f"+{up:,.2f}", (x, up), xytext=(0, 7), textcoords="offset points",
                              ha="center", va="bottom", fontsize="x-small")  # fmt: skip
            if down:
                axes.annotate(f"{down:,.2f}", (x, down), xytext=(0, -7),
                              textcoords="offset points", ha="center", va="top",
                              fontsize="x-small")  # fmt: skip
        axes.plot(labels, column("net"), color="#222", marker="o", markersize=4,
                  linewidth=1, label="net")  # fmt: skip
        # the net is written only where it differs from the month's gains and losses
        for x, (value, shown) in enumerate(zip(column("net"), text("net"), strict=True)):
            if shown and gains[x] and losses[x]:
                axes.annotate(f"net {shown}", (x, value), xytext=(8, 0),
                              textcoords="offset points", ha="left", va="center",
                              fontsize="x-small", color="#222",
                              bbox=_LABEL_BOX)  # fmt: skip
        axes.axhline(0, color="#999", linewidth=0.8)
        top, bottom = max([0.0, *gains]), min([0.0, *losses])
        span = (top - bottom) or 1.0
        axes.set_ylim(bottom - span * 0.18, top + span * 0.18)  # the labels stay inside
        # beside the plot: over it, it would hide the bars of the first months
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    frameon=False)  # fmt: skip
    else:
        values = [float(getattr(v, "amount", v)) for _, v in series]  # drawing only
        bars = axes.bar(labels, values, color="#3b6ea5")
        shown = [v.format_amount() if hasattr(v, "format_amount") else str(v) for _, v in series]
        axes.bar_label(bars, labels=shown, padding=3, fontsize="x-small")
        low, high = min([0.0, *values]), max([0.0, *values])
        span = (high - low) or 1.0
        axes.set_ylim(low - (span * 0.12 if low < 0 else 0), high + span * 0.15)
    axes.margins(x=0.08)
    axes.set_xlabel("Month")
    axes.set_ylabel(unit if movements or unit != "subscriptions" else "Subscriptions")
    if metric == "active":
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count has no halves
    title = {"movements": "MRR movements", "active": "Active subscriptions",
             "churn": "Customer churn", "subscription_churn": "Subscription churn"}.get(
        metric, metric.upper())  # fmt: skip
    axes.set_title(f"{title} by month ({unit})")
    axes.tick_params(axis="x", labelrotation=45)
    axes.grid(axis="y", color="#eee", linewidth=0.8)
    axes.set_axisbelow(True)
    try:
        figure.savefig(path)
    except OSError as exc:  # a missing directory, a read-only place
        raise AbonnementError(f"--chart: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)


@click.group()
def segments() -> None:
    """Segments: named queries over subscriptions or contacts, from the rule files."""


SUBSCRIPTION_MEMBERS = (
    Column("id", lambda m: m.id),
    Column("status", lambda m: m.status),
    Column("contact_id", lambda m: m.contact_id, title="CONTACT"),
    Column("currency", lambda m: m.currency),
)
CONTACT_MEMBERS = (
    Column("id", lambda m: m.id),
    Column("name", lambda m: m.name),
    Column("email", lambda m: m.email),
    Column("company", lambda m: m.company),
)


@segments.command("show")
@click.argument("name")
@as_of_option
@csv_option
@json_option
@click.pass_obj
def segments_show(app: App, name: str, as_of: Any, as_csv: bool, as_json: bool) -> None:
    """The members of a segment on a date (default today): a table (or CSV, or JSON)."""
    from abonnement.views import segment_json

    on = day_or_today(app, as_of)
    kind, members = queries.segment(app.context, name, on)
    if as_json:
        echo_json(segment_json(name, kind, on, members))
        return
    columns = SUBSCRIPTION_MEMBERS if kind == "subscriptions" else CONTACT_MEMBERS
    if not as_csv:
        click.echo(f"{name} ({kind}, {on}): {len(members)}")
    echo_rows(columns, members, as_csv=as_csv)


COMMANDS = (report, segments)
