"""``abonnement serve`` (buyer pages, processor webhooks, the HTTP API) and
``abonnement api-keys …`` (create, list, revoke)."""

from __future__ import annotations

import os
from typing import Any

import click

from abonnement.app import App
from abonnement.cli.common import as_of_option, day_or_today, echo_json, json_option
from abonnement.errors import AbonnementError
from abonnement.operations import access


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (more than one: use PostgreSQL).")  # fmt: skip
@json_option  # a server prints no result: with --json, a refusal to start is JSON
@click.pass_obj
def serve(app: App, host: str, port: int, workers: int, as_json: bool) -> None:
    """Serve the buyer pages, processor webhooks and the HTTP API (/api/v1).

    Links in invoices and e-mails point at settings.server.public_url: set it to where
    buyers reach this server."""
    try:
        import uvicorn

        from abonnement.server import create_app
    except ImportError as exc:
        raise AbonnementError(
            f"the server needs its extra ({exc.name} is missing): pip install 'abonnement[server]'"
        ) from None
    asgi = create_app(app)  # loads the config now: a bad one stops here, every problem listed
    click.echo(f"abonnement serving {app.catalog.settings.account} on http://{host}:{port} "
               f"(links: {app.catalog.settings.public_url})", err=True)  # fmt: skip
    if workers == 1:
        uvicorn.run(asgi, host=host, port=port, log_level="warning", server_header=False)
        return
    # Each worker process builds its own app from the environment (the factory in asgi.py).
    os.environ["ABONNEMENT_CONFIG"] = str(app.config_dir)
    os.environ["ABONNEMENT_DATABASE_URL"] = str(app.database_url)
    uvicorn.run("abonnement.server.asgi:app", factory=True, host=host, port=port,
                workers=workers, log_level="warning", server_header=False)  # fmt: skip


@click.group("api-keys")
def api_keys() -> None:
    """Keys for the HTTP API: create (shown once), list, revoke."""


@api_keys.command("create")
@click.argument("name")
@as_of_option
@json_option
@click.pass_obj
def api_keys_create(app: App, name: str, as_of: Any, as_json: bool) -> None:
    """Make a key; it is shown this once (only its hash is stored)."""
    result = access.create_key(app.context, name, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(result["key"])
    click.echo(f"API key {name}: keep it now, it is not shown again; "
               "send it as `Authorization: Bearer KEY`", err=True)  # fmt: skip


@api_keys.command("list")
@json_option
@click.pass_obj
def api_keys_list(app: App, as_json: bool) -> None:
    """Every key, by name, with the first characters of the key and when it was revoked."""
    rows = access.keys(app.context)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked_on']}" if row["revoked_on"] else "live"
        click.echo(f"{row['name']:<24} {row['prefix']}…  created {row['created_on']}  {state}")


@api_keys.command("revoke")
@click.argument("name")
@as_of_option
@json_option
@click.pass_obj
def api_keys_revoke(app: App, name: str, as_of: Any, as_json: bool) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    result = access.revoke_key(app.context, name, day_or_today(app, as_of))
    if as_json:
        echo_json(result)
        return
    click.echo(f"revoked {name}")


COMMANDS = (serve, api_keys)
