"""`arv compile`: images in, one MindAR ``.mind`` file out, with a quality verdict per target."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from arv.cli.app import app

if TYPE_CHECKING:
    from arv.mindar import CompiledTargets

# Kept in step with arv.mindar's defaults, which are not imported here so `arv --help` stays fast.
# (The pixel limit is not repeated: it is ARV_MAX_IMAGE_PIXELS, whose default is the compiler's.)
DEFAULT_WORKING_SIDE = 1024
MIN_WORKING_SIDE = 128


def _fail(message: str) -> typer.Exit:
    # Exactly one line on stderr: the file and the problem, never a traceback.
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(1)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write the file whole or not at all, so a failed run never leaves half a .mind behind."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _compile_with_progress_bar(images: list[Path], **options: object) -> CompiledTargets:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from arv.mindar import compile_targets

    console = Console(stderr=True)
    if not console.is_terminal:
        return compile_targets(images, **options)  # type: ignore[arg-type]
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("compiling", total=1.0)

        def advance(fraction: float, message: str) -> None:
            # Draw each stage as it starts: a stage can be shorter than the bar's refresh interval.
            progress.update(task, completed=fraction, description=message, refresh=True)

        return compile_targets(images, progress=advance, **options)  # type: ignore[arg-type]


def _summary_line(report: dict) -> str:
    features = sum(keyframe["feature_points"] for keyframe in report["keyframes"])
    tracking = "/".join(str(level["points"]) for level in report["tracking_levels"])
    weak = f"; weak: {', '.join(report['weak_regions'])}" if report["weak_regions"] else ""
    return (
        f"{report['source']}: {report['verdict']}, findable {report['findability']}/5 "
        f"({report['found_share']:.0%} of simulated phone views{weak}) "
        f"({report['width']} x {report['height']} px, "
        f"{len(report['keyframes'])} keyframes, {features} feature points, {tracking} tracking points)"
    )


@app.command("compile")
def compile_command(
    images: Annotated[list[Path], typer.Argument(help="Images to compile, one target each, in this order.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .mind file to write.")],
    json_report: Annotated[
        bool, typer.Option("--json", help="Print the quality report as JSON on stdout.")
    ] = False,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            min=1,
            show_default="ARV_MAX_IMAGE_PIXELS",
            help="Refuse images whose header claims more pixels.",
        ),
    ] = None,
    working_side: Annotated[
        int,
        typer.Option(
            "--working-side",
            min=MIN_WORKING_SIDE,
            help="Reduce photos to at most this shortest side (px) first.",
        ),
    ] = DEFAULT_WORKING_SIDE,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Keep MindAR's own keyframes, bit-exact with its compiler, instead of training them "
            "on simulated phone views (for comparison with MindAR).",
        ),
    ] = False,
) -> None:
    """Compile images into one MindAR target file (.mind), one target per image."""
    from arv.config import get_settings
    from arv.mindar import MindARInputError

    if max_pixels is None:
        max_pixels = get_settings().max_image_pixels
    try:
        compiled = _compile_with_progress_bar(
            images, max_pixels=max_pixels, working_side=working_side, exact=exact
        )
    except MindARInputError as exc:
        raise _fail(str(exc)) from None
    except MemoryError:
        raise _fail("not enough memory to compile these images; try a smaller --working-side") from None
    except Exception as exc:  # a bug must still end in one line, not a traceback
        raise _fail(f"compiling failed unexpectedly ({type(exc).__name__}: {exc})") from None

    try:
        _write_atomically(output, compiled.data)
    except OSError as exc:
        raise _fail(f"{output}: cannot write the .mind file ({exc.strerror or exc})") from None

    reports = [report.to_dict() for report in compiled.reports]
    if json_report:
        typer.echo(
            json.dumps({"output": str(output), "bytes": len(compiled.data), "targets": reports}, indent=2)
        )
    else:
        for report in reports:
            typer.echo(_summary_line(report))
        targets = "1 target" if len(reports) == 1 else f"{len(reports)} targets"
        typer.echo(f"wrote {output} ({len(compiled.data)} bytes, {targets})")
    sys.stdout.flush()
