"""Alembic environment: migrations run on the connection abonnement hands over, or — when a
contributor runs the ``alembic`` command with the repository's alembic.ini — on the database
in ``ABONNEMENT_DATABASE_URL`` (else the ini file's ``sqlalchemy.url``)."""

import os

from alembic import context
from sqlalchemy import create_engine

from abonnement.plugins.storage.tables import metadata


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


if "connection" in context.config.attributes:
    _run(context.config.attributes["connection"])
else:
    url = os.environ.get("ABONNEMENT_DATABASE_URL") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    with create_engine(url).begin() as connection:
        _run(connection)
