"""The Jinja2 environments of documents and messages: the config's ``templates/`` folder
first, then the package's; gettext from the message catalogs; strict about undefined names.

Templates are code from the config directory, which anyone who may edit invoices' wording can
change: they run in Jinja2's immutable sandbox, so ``{{ cycler.__init__.__globals__ }}`` and
the like reach no module, no file and no secret, and a template cannot change the values it
is given (``SecurityError``, reported as a template error)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from jinja2.filters import do_urlize
from jinja2.sandbox import ImmutableSandboxedEnvironment

from abonnement.documents.i18n import translations

__all__ = ["environment"]


@functools.cache
def environment(template_dir: Path | None, language: str, builtin: str) -> jinja2.Environment:
    """Templates from ``template_dir`` (when it exists), else the package's ``builtin`` folder,
    translated into ``language``, sandboxed. HTML (``.html``, ``.htm``, ``.xml``) is escaped;
    plain-text templates end in ``.txt``."""
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None and template_dir.is_dir():
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
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["urlize"] = _urlize
    return env


# what any link or address ``urlize`` turns into a link contains (its schemes, ``www.``, an
# e-mail's ``@``, the top-level domains it knows without a scheme)
_LINKISH = re.compile(r"https?://|www\.|@|\.(?:com|net|int|edu|gov|org|info|mil)", re.IGNORECASE)


@jinja2.pass_eval_context
def _urlize(eval_ctx: Any, value: str, *args: Any, **kwargs: Any) -> str:
    """Jinja2's ``urlize``, answering at once for text with nothing link-like in it (the
    filter then only escapes it; most paragraphs of a message): the same output, without
    examining every word."""
    policies = eval_ctx.environment.policies
    if args or kwargs or policies["urlize.extra_schemes"] or _LINKISH.search(str(value)):
        return do_urlize(eval_ctx, value, *args, **kwargs)
    text = str(markupsafe.escape(value))
    return markupsafe.Markup(text) if eval_ctx.autoescape else text
