"""How a long operation says how far it got, without knowing who listens.

An operation that can take a while (a billing run, an apply, a forecast, a plan, a report over
many months) takes an optional ``progress`` callback and calls it as it goes with
``(done, total)``: units done so far and the units it expects in all. ``total`` is None when
the operation cannot know it up front (a report streams the subscriptions), and it may grow
as the operation learns more (a billing run finds a subscription due again later in its
span). The command line draws a bar from it (``cli/progress.py``); a Python caller may log
it, or pass nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Progress", "counted"]

Progress = Callable[[int, "int | None"], None]

T = TypeVar("T")


def counted(items: Iterable[T], progress: Progress | None, total: int | None = None) -> Iterator[T]:
    """``items`` as they are, telling ``progress`` after each one (``total``: how many
    there will be, if known)."""
    if progress is None:
        yield from items
        return
    progress(0, total)
    for done, item in enumerate(items, 1):
        yield item
        progress(done, total)
