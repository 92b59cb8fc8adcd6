"""`arv users create|link|list`: console accounts, as the operator makes them from a shell.

`create` prints the new person's one-time link instead of mailing it: the operator hands it over, and
the first operator account of a fresh install can only come from here. `link` prints a new one for an
existing account (a forgotten password on a server without e-mail).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from arv.cli.app import app

users_app = typer.Typer(help="Console accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("create")
def create(
    email: Annotated[str, typer.Option("--email", help="The person's e-mail address.")],
    admin: Annotated[bool, typer.Option("--admin", help="An operator of the whole platform.")] = False,
    company: Annotated[
        int | None, typer.Option("--company", help="The company the person works for.")
    ] = None,
    owner: Annotated[
        bool, typer.Option("--owner", help="The company's owner (a member without it).")
    ] = False,
) -> None:
    """Create an account and print its one-time link to set a password (one line)."""
    from arv.config import get_settings
    from arv.db.models import LinkPurpose, UserRole
    from arv.db.session import session_scope
    from arv.services.accounts import AccountError, create_user, issue_link

    if admin == (company is not None):
        typer.echo("error: give exactly one of --admin or --company ID", err=True)
        raise typer.Exit(2)
    if admin and owner:
        typer.echo(
            "error: --owner is for a company's account; an operator (--admin) has no company", err=True
        )
        raise typer.Exit(2)
    role = UserRole.OPERATOR if admin else UserRole.OWNER if owner else UserRole.MEMBER
    try:
        with session_scope() as session:
            user = create_user(session, email=email, company_id=company, role=role)
            link = issue_link(session, user, purpose=LinkPurpose.INVITE, settings=get_settings())
    except (AccountError, LookupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(link)


@users_app.command("link")
def link(email: Annotated[str, typer.Option("--email", help="The account's e-mail address.")]) -> None:
    """Print a new one-time link to set the account's password (one line); it works for an hour
    (ARV_CONSOLE_RESET_TTL_S), and the account's old password works until it is used."""
    from sqlalchemy import select

    from arv.config import get_settings
    from arv.db.models import LinkPurpose, User
    from arv.db.session import session_scope
    from arv.services.accounts import AccountError, issue_link, normalise_email

    try:
        address = normalise_email(email)
        with session_scope() as session:
            user = session.scalars(select(User).where(User.email == address)).one_or_none()
            if user is None:
                raise AccountError(f"there is no account for {address}; make one with `arv users create`")
            printed = issue_link(session, user, purpose=LinkPurpose.RESET, settings=get_settings())
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(printed)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


@users_app.command("list")
def list_() -> None:
    """Print every account, the operator's first: e-mail, role, company, last sign-in."""
    from rich.console import Console
    from rich.table import Table

    from arv.db.session import session_scope
    from arv.services.accounts import list_users

    with session_scope() as session:
        users = list_users(session, None)
    table = Table("email", "role", "company", "last sign-in", box=None)
    for user in users:
        table.add_row(
            user.email,
            user.role,
            str(user.company_id) if user.company_id is not None else "-",
            _when(user.last_sign_in_at) if user.password_hash else "no password set yet",
        )
    # No terminal, no width: a pipe or a log gets whole lines, not columns cut to 80 characters.
    Console(width=None if typer.get_text_stream("stdout").isatty() else 200).print(table)
