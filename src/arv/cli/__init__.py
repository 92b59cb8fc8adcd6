"""The `arv` command: one Typer application, one module per group of commands."""

import sys

from pydantic import ValidationError

# Each module registers its commands on `app` when imported.
from arv.cli import compile, keys, platform, tasks, users  # noqa: E402,F401  (registration)
from arv.cli.app import app
from arv.private_files import owner_only_umask


def main() -> None:
    # Before anything writes: every file of every part (and of their children) is the owner's only.
    owner_only_umask()
    try:
        app()
    except ValidationError as exc:
        # A setting the environment got wrong: one line per problem, naming it, instead of a traceback.
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            print(
                f"error: invalid setting{' ARV_' + where.upper() if where else ''}: {error['msg']}",
                file=sys.stderr,
            )
        sys.exit(2)
