"""`arv keys create|list|revoke`: API keys for the operator or a company, as the operator sees them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from arv.cli.app import app

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    admin: Annotated[bool, typer.Option("--admin", help="An operator key for every company.")] = False,
    company: Annotated[int | None, typer.Option("--company", help="The company the key acts for.")] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Your words for the key, e.g. 'print shop laptop'.")
    ] = None,
) -> None:
    """Print a new API key (shown once: it is stored hashed)."""
    from pydantic import ValidationError

    from arv.api.schemas import KeyCreate
    from arv.db.session import session_scope
    from arv.services.auth import create_key

    if admin == (company is not None):
        typer.echo("error: give exactly one of --admin or --company ID", err=True)
        raise typer.Exit(2)
    try:
        # The same rules for a label as the API's (length, no control characters).
        label = KeyCreate(label=label).label
    except ValidationError as exc:
        typer.echo(f"error: --label: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        with session_scope() as session:
            key = create_key(session, company_id=company, admin=admin, label=label)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


@keys_app.command("list")
def list_(
    company: Annotated[int | None, typer.Option("--company", help="Only this company's keys.")] = None,
) -> None:
    """Print every key, newest first: id, prefix, label, company, created, last used, revoked."""
    from rich.console import Console
    from rich.table import Table

    from arv.db.session import session_scope
    from arv.services.auth import list_keys

    with session_scope() as session:
        keys = list_keys(session, None, company_id=company)
    table = Table("id", "prefix", "label", "company", "created", "last used", "revoked", box=None)
    for key in keys:
        table.add_row(
            str(key.id),
            key.prefix,
            key.label or "",
            "admin" if key.is_admin else str(key.company_id),
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    # No terminal, no width: a pipe or a log gets whole lines, not columns cut to 80 characters.
    Console(width=None if typer.get_text_stream("stdout").isatty() else 200).print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (`arv keys list`).")],
) -> None:
    """Revoke a key for good: it is refused from the next request on."""
    from arv.db.session import session_scope
    from arv.services.auth import KeyNotFound, LastAdminKey, revoke_key

    try:
        with session_scope() as session:
            revoked = revoke_key(session, None, key_id)
    except (KeyNotFound, LastAdminKey) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key {key_id} ({revoked.prefix}...) revoked at {_when(revoked.revoked_at)}")
