"""An app factory for ASGI servers run by hand (``uvicorn --factory
abonnement.server.asgi:app``): the config directory and database come from
``ABONNEMENT_CONFIG`` and ``ABONNEMENT_DATABASE_URL``, as for the CLI."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from abonnement.app import App
from abonnement.server.app import create_app

__all__ = ["app"]


def app() -> FastAPI:
    """The server for the project the environment names."""
    project = App(
        config_dir=Path(os.environ.get("ABONNEMENT_CONFIG", ".")),
        database_url=os.environ.get("ABONNEMENT_DATABASE_URL"),  # None: the default SQLite file
    )
    return create_app(project)
