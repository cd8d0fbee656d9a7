"""Paths written in the config: relative ones are relative to the config directory and stay
inside it (``../`` that climbs out is refused); an absolute path is taken as written, on
purpose."""

from __future__ import annotations

import os

__all__ = ["escapes"]


def escapes(relative: str) -> bool:
    """Whether ``relative`` (a path as written, not absolute) climbs out of the folder it is
    relative to: ``../x``, ``a/../../x``. Decided on the text alone (no file system)."""
    normal = os.path.normpath(relative)
    return normal == os.pardir or normal.startswith(os.pardir + os.sep)
