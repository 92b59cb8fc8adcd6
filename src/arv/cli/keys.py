"""`arv keys create`: API keys for the operator or a company."""

from __future__ import annotations

from typing import Annotated

import typer

from arv.cli.app import app

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    admin: Annotated[bool, typer.Option("--admin", help="An operator key for every company.")] = False,
    company: Annotated[int | None, typer.Option("--company", help="The company the key acts for.")] = None,
) -> None:
    """Print a new API key (shown once: it is stored hashed)."""
    from arv.db.session import session_scope
    from arv.services.auth import create_key

    if admin == (company is not None):
        typer.echo("error: give exactly one of --admin or --company ID", err=True)
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            key = create_key(session, company_id=company, admin=admin)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)
