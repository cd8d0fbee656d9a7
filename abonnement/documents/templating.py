"""The Jinja2 environments of documents and messages: the config's ``templates/`` folder
first, then the package's; gettext from the message catalogs; strict about undefined names.

Templates are code from the config directory, which anyone who may edit invoices' wording can
change: they run in Jinja2's immutable sandbox, so ``{{ cycler.__init__.__globals__ }}`` and
the like reach no module, no file and no secret, and a template cannot change the values it
is given (``SecurityError``, reported as a template error)."""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from jinja2.filters import do_urlize
from jinja2.sandbox import ImmutableSandboxedEnvironment

from abonnement.documents.i18n import translations

__all__ = ["TemplateTooSlow", "cpu_limit", "environment"]

# CPU seconds a template may take to render once: the sandbox bounds each range() but not
# loops inside loops, and a template must never hang a run or `validate`
RENDER_SECONDS = 2.0


class TemplateTooSlow(jinja2.TemplateError):
    """A template spent more than its CPU budget rendering once."""


@contextlib.contextmanager
def cpu_limit(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Raise ``TemplateTooSlow`` inside the block once it has used ``seconds`` of CPU time
    (``ITIMER_VIRTUAL``, which nothing else here uses). Only on the main thread of a system
    with interval timers; elsewhere the block runs unbounded."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TemplateTooSlow(f"rendering took more than {seconds:g} s of CPU time (a loop "
                              "too long?)")  # fmt: skip

    previous = signal.signal(signal.SIGVTALRM, expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def environment(template_dir: Path | None, language: str, builtin: str) -> jinja2.Environment:
    """Templates from ``template_dir`` (when it exists), else the package's ``builtin`` folder,
    translated into ``language``, sandboxed. HTML (``.html``, ``.htm``, ``.xml``) is escaped;
    plain-text templates end in ``.txt``."""
    # whether the folder exists is part of the key: one made after a first rendering in the
    # same process (a command run after another, in-process) is not overlooked
    found = template_dir is not None and template_dir.is_dir()
    return _environment(template_dir if found else None, language, builtin)


@functools.cache
def _environment(template_dir: Path | None, language: str, builtin: str) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.PackageLoader("abonnement.documents", builtin))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    catalog = translations(language)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = _gettext(catalog.gettext)
    env.filters["urlize"] = _urlize
    return env


def _gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """The ``_("…", name=value)`` of templates: what the i18n extension's newstyle
    ``gettext`` does (translate, mark safe where the template escapes, then fill in the
    variables, which ``%`` escapes), in one call. The extension's own goes through
    ``gettext`` by name and two sandboxed calls: a third of a message's rendering."""

    @jinja2.pass_eval_context
    def gettext(eval_ctx: Any, message: str, /, **variables: Any) -> str:
        translated = translate(message)
        if eval_ctx.autoescape:
            return markupsafe.Markup(translated) % variables
        return translated % variables

    return gettext


# what any link or address ``urlize`` turns into a link contains (its schemes, ``www.``, an
# e-mail's ``@``, the top-level domains it knows without a scheme)
_LINKISH = re.compile(r"https?://|www\.|@|\.(?:com|net|int|edu|gov|org|info|mil)", re.IGNORECASE)


# what ``urlize`` splits a text into: it looks at each word on its own, never across spaces
_WORDS = re.compile(r"(\s+)")


@jinja2.pass_eval_context
def _urlize(eval_ctx: Any, value: str, *args: Any, **kwargs: Any) -> str:
    """Jinja2's ``urlize``, with the same output, run only on the words that look like a link
    or an address (``urlize`` takes each word on its own): a message's paragraph with its pay
    link costs one word's work, not every word's; most paragraphs have none and are only
    escaped."""
    policies = eval_ctx.environment.policies
    if args or kwargs or policies["urlize.extra_schemes"]:
        return do_urlize(eval_ctx, value, *args, **kwargs)
    escaped = markupsafe.escape(value)
    text = str(escaped)
    if _LINKISH.search(text):
        text = "".join(
            str(do_urlize(eval_ctx, markupsafe.Markup(word))) if _LINKISH.search(word) else word
            for word in _WORDS.split(text)
        )
    return markupsafe.Markup(text) if eval_ctx.autoescape else text
