"""Commands that run the platform: migrate, api, worker, beat, and `run` (all of it in one group)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from arv.cli.app import app
from arv.cli.supervisor import Supervisor
from arv.config import get_settings
from arv.private_files import private_dir


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from arv.db.migrate import upgrade_database

    upgrade_database()
    typer.echo("database schema is up to date")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default ARV_API_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from arv.api.slow_clients import uvicorn_options

    settings = get_settings()
    uvicorn.run(
        "arv.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        **uvicorn_options(),
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str, typer.Option("-Q", "--queues", help="Comma-separated queues.")
    ] = "markers,notifications,default,videos",
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency")] = None,
) -> None:
    """Run a Celery worker; extra options go to `celery worker` as they are."""
    args = ["worker", "-Q", queues, "--loglevel", get_settings().log_level]
    if concurrency:
        args += ["-c", str(concurrency)]
    _celery(args + list(ctx.args))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def beat(ctx: typer.Context) -> None:
    """Run Celery Beat, which sends the periodic tasks."""
    from arv.tasks.app import get_celery_app

    # Beat's shelve opens its file without creating the folder: a fresh data dir would stop it at start.
    private_dir(Path(get_celery_app().conf.beat_schedule_filename).parent)
    _celery(["beat", "--loglevel", get_settings().log_level] + list(ctx.args))


def _celery(args: list[str]) -> None:
    from arv.tasks.app import get_celery_app

    get_celery_app().start(argv=args)


@app.command()
def run(
    port: Annotated[int | None, typer.Option(help="API port (default ARV_API_PORT).")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """The whole platform: API, a worker per queue, Beat. A part that exits is restarted; Ctrl-C stops all."""
    from arv.db.migrate import upgrade_database
    from arv.db.session import session_scope
    from arv.services.auth import create_first_admin_key

    settings = get_settings()
    if migrate_first:
        upgrade_database()
    with session_scope() as session:
        # Only the first start makes (and prints) a key: a key printed at every start would sit in
        # clear in every log of `arv run`.
        admin_key = create_first_admin_key(session)
    env = {**os.environ}
    # Every process writes its metrics here, so the API's /metrics shows the workers' tasks too.
    metrics_dir = settings.resolved_data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    private_dir(metrics_dir)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if port:
        env["ARV_API_PORT"] = str(port)
    exe = [sys.executable, "-m", "arv"]
    parts = {
        "api": exe + ["api"] + (["--port", str(port)] if port else []),
        "markers": exe
        + [
            "worker",
            "-Q",
            "markers",
            "-c",
            str(os.cpu_count() or 1),
            "-n",
            "markers@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        "notifications": exe
        + [
            "worker",
            "-Q",
            "notifications",
            "-c",
            "2",
            "-n",
            "notifications@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        "default": exe
        + ["worker", "-Q", "default", "-c", "1", "-n", "default@%h", "--without-gossip", "--without-mingle"],
        # One transcode at a time: ffmpeg uses every core itself, at a lower priority than compiles.
        "videos": exe
        + ["worker", "-Q", "videos", "-c", "1", "-n", "videos@%h", "--without-gossip", "--without-mingle"],
        "beat": exe + ["beat"],
    }
    supervisor = Supervisor(parts, env=env)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    base = settings.public_base_url.rstrip("/") or f"http://{settings.api_host}:{port or settings.api_port}"
    typer.secho(f"ARV is running: API at {base} (docs at {base}/docs)", fg="green", err=True)
    if admin_key is not None:
        typer.secho(f"admin key: {admin_key}", fg="yellow", err=True)
        typer.echo("It is shown this once (ARV keeps only its hash): keep it somewhere safe.", err=True)
    else:
        typer.echo(
            "An admin key exists already; `arv keys create --admin` prints a new one "
            "(`arv keys list` shows them all).",
            err=True,
        )
    typer.echo(
        f"Web console at {base}/console/; the first operator's account: "
        "`arv users create --admin --email YOU@EXAMPLE.COM` prints a link to set its password.",
        err=True,
    )
    typer.echo("A part that exits is started again. Ctrl-C stops everything.", err=True)
    supervisor.run()
