"""A progress bar on standard error for the long steps (apply, run, forecast, plan, report).

The operations say how far they got through a ``progress(done, total)`` callback
(``operations/progress.py``); this draws it. Drawn only for a person watching: standard error
is a terminal, and none of ``--json``, ``-q`` or ``--log-format json`` was given; otherwise
``progress_bar`` yields None and the operation runs without a callback (a cron job's log and a
script's output carry no bar). The bar is erased when the step ends, and for each log line
written meanwhile (``cli/logs.py`` calls ``clear_line``), so the two never share a line."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from abonnement.cli.common import JSON_MODE, LOG_JSON, QUIET
from abonnement.operations.progress import Progress

__all__ = ["Bar", "clear_line", "progress_bar", "wanted"]

_WIDTH = 30
_EVERY = 0.1  # seconds between two draws: a callback per subscription costs no terminal time

_active: Bar | None = None


class Bar:
    """``label [#####-----]  50% 500/1000``, redrawn in place on ``stream``; with no total
    known, ``label 500 UNIT``."""

    def __init__(self, label: str, stream: TextIO, unit: str = "") -> None:
        self.label, self.stream, self.unit = label, stream, unit
        self.done, self.total = 0, None
        self.drawn_at = -1.0
        self.visible = False

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.drawn_at >= _EVERY or (total is not None and done >= total):
            self.drawn_at = now
            self.draw()

    def text(self) -> str:
        """The bar as it stands."""
        if self.total is None:
            return f"{self.label} {self.done} {self.unit}".rstrip()
        share = min(1.0, self.done / self.total) if self.total else 0.0
        filled = int(_WIDTH * share)
        return (f"{self.label} [{'#' * filled}{'-' * (_WIDTH - filled)}] {share:4.0%} "
                f"{self.done}/{self.total}")  # fmt: skip

    def draw(self) -> None:
        self.stream.write(f"\r{self.text()}\x1b[K")
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        """Erase the bar's line (it is drawn again on the next call)."""
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False
            self.drawn_at = -1.0


def wanted(stream: TextIO | None = None) -> bool:
    """Whether a bar is drawn for the current command: standard error (``stream``) is a
    terminal, and the output is for a person (no ``--json``, ``-q``, ``--log-format json``)."""
    stream = stream or sys.stderr
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    if meta.get(JSON_MODE) or meta.get(QUIET) or meta.get(LOG_JSON):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no bar
        return False


@contextmanager
def progress_bar(label: str, unit: str = "") -> Iterator[Progress | None]:
    """A ``progress(done, total)`` callback drawing a bar on standard error for the length of
    the block, or None when no bar is wanted (``wanted``)."""
    global _active
    stream = sys.stderr
    if not wanted(stream):
        yield None
        return
    bar = Bar(label, stream, unit)
    _active = bar
    try:
        yield bar
    finally:
        _active = None
        bar.clear()


def clear_line() -> None:
    """Erase the bar being drawn, if any, before something else is written to standard
    error."""
    if _active is not None:
        _active.clear()
