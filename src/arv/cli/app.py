"""The Typer application every command module registers on."""

import typer

app = typer.Typer(
    name="arv",
    help="ARV: compile MindAR targets and run the platform (API, workers, Beat).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
