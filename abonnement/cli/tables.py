"""Listings as aligned tables or CSV, and records as labelled fields: one renderer for every
command.

A listing declares its ``Column``s once and hands its rows (the same dicts ``--json`` prints)
to ``echo_rows``: a table with a header row and columns as wide as their widest cell (money
and counts right-aligned), or with ``--csv`` (``csv_option``) CSV written by the ``csv``
module with a header row of the JSON keys.

CSV cells are safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return would be read as a formula (OWASP, "CSV injection"), so it
is written with a leading ``'``, which spreadsheets show as text. A number column's cells that
are real numbers (``-12.50``, ``3``) stay numbers, unquoted; anything else in them is text.

``show`` commands print ``echo_fields``: one ``label: value`` line per field, labels aligned,
values as a person reads them (no Python reprs: None is ``-``, a mapping ``k=v, …``).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import click

__all__ = [
    "Column",
    "csv_cell",
    "csv_option",
    "csv_text",
    "echo_fields",
    "echo_rows",
    "fields_text",
    "table_text",
    "text",
]

csv_option = click.option(
    "--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then one row per line)."
)

# what a spreadsheet reads as the start of a formula (OWASP's list)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?\Z", re.ASCII)
_GAP = "  "


@dataclass(frozen=True)
class Column:
    """One column of a listing: ``name`` is its CSV header and the row key read (the JSON
    key) unless ``value`` says how to get the cell from a row; ``title`` heads the table
    (default: the name in capitals); ``number`` right-aligns it, and in CSV keeps its
    numbers unquoted."""

    name: str
    value: Callable[[Any], Any] | None = None
    title: str | None = None
    number: bool = False

    def cell(self, row: Any) -> Any:
        """The raw value of this column in ``row``."""
        return self.value(row) if self.value is not None else row.get(self.name)

    @property
    def heading(self) -> str:
        return self.title if self.title is not None else self.name.replace("_", " ").upper()


def text(value: Any, none: str = "-", *, nested: bool = False) -> str:
    """A value as a person reads it: None is ``none``, a bool yes/no, a date ISO, a mapping
    ``k=v, …``, a list comma-separated (inside another: in braces or brackets), a Decimal as
    written (never ``Decimal('…')``)."""
    if nested and isinstance(value, Mapping):
        return "{" + text(value, "") + "}"
    if nested and isinstance(value, list | tuple | set | frozenset):
        return "[" + text(value, "") + "]"
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "format_amount"):  # Money
        return f"{value.format_amount()} {value.currency}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={text(v, nested=True)}" for k, v in value.items()) or none
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(text(v, nested=True) for v in value) or none
    return str(value)


def _width(value: str) -> int:
    """Columns a string takes on a terminal: wide (CJK) characters two, combining marks
    none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF"
               else 1 for c in value)  # fmt: skip


def _pad(value: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(value))
    return fill + value if right else value + fill


def table_text(columns: Sequence[Column], rows: Iterable[Any]) -> str:
    """The rows as a table: a header row, then one line per row, each column as wide as its
    widest cell (number columns right-aligned), two spaces between; no trailing spaces."""
    cells = [[c.heading for c in columns]]
    cells += [[_one_line(text(c.cell(row))) for c in columns] for row in rows]
    widths = [max(_width(line[i]) for line in cells) for i in range(len(columns))]
    lines = [_GAP.join(_pad(v, w, c.number) for v, w, c in zip(line, widths, columns, strict=True))
             .rstrip() for line in cells]  # fmt: skip
    return "\n".join(lines)


def _one_line(value: str) -> str:
    """A cell never breaks the table's lines."""
    return value.replace("\r", " ").replace("\n", " ")


def csv_cell(value: Any, number: bool = False) -> str:
    """A cell for CSV: empty for None; a real number as it is in a ``number`` column;
    otherwise text, with a leading ``'`` when it starts like a formula."""
    cell = text(value, none="")
    if number and _NUMBER.match(cell):
        return cell
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def csv_text(columns: Sequence[Column], rows: Iterable[Any]) -> str:
    """The rows as CSV (the ``csv`` module's quoting, ``\\n`` line ends): a header row of
    the column names, then one row per row, every cell through ``csv_cell``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(c.name) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(c.cell(row), c.number) for c in columns])
    return out.getvalue()


def echo_rows(columns: Sequence[Column], rows: Iterable[Any], *, as_csv: bool = False) -> None:
    """Print a listing on standard output: CSV with ``as_csv``, else a table."""
    if as_csv:
        click.echo(csv_text(columns, rows), nl=False)
    else:
        click.echo(table_text(columns, list(rows)))


def fields_text(fields: Sequence[tuple[str, Any]]) -> str:
    """``label: value`` lines, the values aligned after the longest label."""
    width = max((_width(label) for label, _ in fields), default=0) + 1
    return "\n".join(f"{_pad(label + ':', width, False)} {_one_line(text(value))}".rstrip()
                     for label, value in fields)  # fmt: skip


def echo_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """Print a record's labelled fields (``fields_text``)."""
    click.echo(fields_text(fields))
