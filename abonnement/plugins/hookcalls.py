"""Calling hooks: through pluggy, with keyword arguments, a plugin that raises named, and
every call traced on the ``abonnement.hooks`` logger when asked (``ABONNEMENT_TRACE_HOOKS=1``).
"""

from __future__ import annotations

import logging
import reprlib
import sys
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any

import pluggy
from pluggy import HookImpl

from abonnement.errors import AbonnementError, PluginError

__all__ = ["TRACE_LOG", "call_hook", "calling_plugin", "short_repr", "trace_hook_calls"]

TRACE_LOG = logging.getLogger("abonnement.hooks")


def _code(function: Callable[..., Any]) -> CodeType | None:
    return getattr(function, "__code__", None)


def _implementers(hook: pluggy.HookCaller) -> dict[CodeType, str]:
    """The code of each implementation of ``hook`` → the plugin it belongs to."""
    return {
        code: impl.plugin_name
        for impl in hook.get_hookimpls()
        if (code := _code(impl.function)) is not None
    }


def _culprit(hook: pluggy.HookCaller, exc: BaseException) -> str:
    """The plugin whose implementation raised ``exc`` inside a call of ``hook``.

    pluggy re-raises an implementation's exception unchanged, but its traceback still runs
    through the implementation's frame: the innermost frame that is an implementation is the
    plugin that raised (a wrapper the exception merely passed through sits further out)."""
    codes = _implementers(hook)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    if found is not None:
        return found
    names = sorted({impl.plugin_name for impl in hook.get_hookimpls()})
    return " or ".join(names) or "?"


def calling_plugin(hook: pluggy.HookCaller) -> Callable[[], str]:
    """For a ``Registry``: which plugin's implementation of ``hook`` is calling it now.

    The whole hook is one pluggy call (so wrappers and tracing see it), and the registry names
    the plugin behind each entry by the nearest implementation frame on the stack."""
    codes = _implementers(hook)

    def caller() -> str:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code in codes:
                return codes[frame.f_code]
            frame = frame.f_back  # type: ignore[assignment]
        return "?"

    return caller


def call_hook(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> Any:
    """Call hook ``name`` through pluggy with keyword arguments; a plugin that raises is
    reported by its name as a ``PluginError``. Our own errors (a ``StorageError`` that says
    the database is unreachable, a duplicate name) already say what is wrong: they pass."""
    hook = getattr(pm.hook, name)
    try:
        return hook(**kwargs)
    except AbonnementError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin `{_culprit(hook, exc)}` failed in {name}: {exc!r}") from exc


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 120


def short_repr(value: object) -> str:
    """``repr`` cut to about 120 characters, for logs and error messages."""
    return _SHORT.repr(value)


def _summary(kwargs: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={_SHORT.repr(value)}" for key, value in kwargs.items())


def trace_hook_calls(pm: pluggy.PluginManager) -> Callable[[], None]:
    """Log every hook call (name, arguments, implementing plugins, then the result or the
    exception) at DEBUG on the ``abonnement.hooks`` logger. Returns the undo function."""

    def before(name: str, impls: Sequence[HookImpl], kwargs: Mapping[str, object]) -> None:
        plugins = ", ".join(impl.plugin_name for impl in impls)
        TRACE_LOG.debug("call %s(%s) [%s]", name, _summary(kwargs), plugins)

    def after(
        outcome: pluggy.Result[object], name: str, impls: Sequence[HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:  # fmt: skip
        if outcome.exception is not None:
            TRACE_LOG.debug("fail %s: %r", name, outcome.exception)
        else:
            TRACE_LOG.debug("done %s -> %s", name, _SHORT.repr(outcome.get_result()))

    if TRACE_LOG.level == logging.NOTSET:
        TRACE_LOG.setLevel(logging.DEBUG)  # asked for by the environment: show it
    if not TRACE_LOG.hasHandlers():  # nobody configured logging (the CLI): write to stderr
        TRACE_LOG.addHandler(logging.StreamHandler())
    return pm.add_hookcall_monitoring(before, after)
