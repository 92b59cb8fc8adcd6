"""`arv tasks list` and `arv tasks run NAME`: the periodic tasks Beat sends, run now on demand."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from arv.cli.app import app
from arv.config import get_settings

tasks_app = typer.Typer(
    help="The periodic tasks Beat runs (expiry, rotation, job sweep...).", no_args_is_help=True
)
app.add_typer(tasks_app, name="tasks")

# How long `arv tasks run` waits for a worker to answer, unless told otherwise.
DEFAULT_TIMEOUT_S = 60.0


def periodic_task_names() -> list[str]:
    """The names of the tasks in Beat's schedule, in schedule order."""
    from arv.tasks.periodic import PERIODIC_TASKS

    return [periodic.name for periodic in PERIODIC_TASKS]


@tasks_app.command("list")
def list_tasks() -> None:
    """Print the periodic tasks, one per line: name, queue, interval."""
    from arv.tasks.periodic import PERIODIC_TASKS

    settings = get_settings()
    for periodic in PERIODIC_TASKS:
        typer.echo(f"{periodic.name}\tqueue={periodic.queue}\tevery {periodic.interval(settings):g} s")


RUN_HELP = (
    "Run the periodic task NAME now and print the counts it changed, as JSON.\n\n"
    "The task goes through the broker to the queue Beat sends it to (see `arv tasks list`), so it needs "
    "a running worker that consumes that queue (`arv worker`, or `arv run`); if none answers within "
    "--timeout seconds, the command says so and exits 1.\n\n"
    "--inline runs the task in this process instead, against the same database, with no broker and no "
    "worker."
)


@tasks_app.command("run", help=RUN_HELP)
def run(
    name: Annotated[str, typer.Argument(help="A periodic task, e.g. deactivate_expired_content.")],
    inline: Annotated[
        bool,
        typer.Option("--inline", help="Run it in this process: no broker and no worker needed (nor used)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a worker's answer before giving up.", min=0.1)
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    from arv.tasks.app import get_celery_app, task_routes

    names = periodic_task_names()
    if name not in names:
        typer.echo(f"error: unknown task {name!r}; the periodic tasks are: {', '.join(names)}", err=True)
        raise typer.Exit(2)
    celery = get_celery_app()
    if inline:
        celery.loader.import_default_modules()
        outcome = celery.tasks[name].apply()
        if outcome.failed():
            typer.echo(f"error: {name} failed: {outcome.result!r}", err=True)
            raise typer.Exit(1)
        result: Any = outcome.result
    else:
        result = _through_a_worker(celery, name, task_routes()[name]["queue"], timeout)
    typer.echo(json.dumps(result))


def _through_a_worker(celery: Any, name: str, queue: str, timeout: float) -> Any:
    from celery.exceptions import TimeoutError as ResultTimeout

    try:
        # `expires`: a message no worker took in time is dropped, so "did not run" stays true later.
        sent = celery.send_task(name, expires=timeout, retry_policy={"max_retries": 1})
    except Exception as exc:  # noqa: BLE001 - any publish failure: the broker cannot be reached
        typer.echo(f"error: could not send {name} to the broker ({exc}); try --inline", err=True)
        raise typer.Exit(1) from None
    try:
        # Asked every 0.1 s (Celery's default is 0.5 s): a pass of a few milliseconds answers at once.
        result = sent.get(timeout=timeout, propagate=False, interval=0.1)
    except ResultTimeout:
        typer.echo(
            f"error: no worker answered within {timeout:g} s; start one that consumes the {queue!r} queue "
            f"(arv worker -Q {queue}) or run the task with --inline",
            err=True,
        )
        raise typer.Exit(1) from None
    if sent.failed():
        typer.echo(f"error: {name} failed in the worker: {result!r}", err=True)
        raise typer.Exit(1)
    return result
