"""The Jinja2 environments of documents and messages: the config's ``templates/`` folder
first, then the package's; gettext from the message catalogs; strict about undefined names.

Templates are code from the config directory, which anyone who may edit invoices' wording can
change: they run in Jinja2's immutable sandbox, so ``{{ cycler.__init__.__globals__ }}`` and
the like reach no module, no file and no secret, and a template cannot change the values it
is given (``SecurityError``, reported as a template error)."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2
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
    return env
