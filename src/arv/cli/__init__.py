"""The `arv` command: one Typer application, one module per group of commands."""

# Each module registers its commands on `app` when imported.
from arv.cli import compile, keys, platform, tasks  # noqa: E402,F401  (registration)
from arv.cli.app import app


def main() -> None:
    app()
