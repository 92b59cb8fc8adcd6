"""`arv compile`: one .mind from several images, a JSON report on request, one-line errors on bad input."""

from __future__ import annotations

import inspect
import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import arv.mindar
from arv.cli import compile as command
from arv.cli.app import app
from arv.mindar import decode_mind
from arv.mindar.images import MIN_SHORTEST_SIDE
from tests.support.fixtures import MINDAR_FIXTURES

FIXTURES = MINDAR_FIXTURES
# The installed console script, run as a customer runs it.
ARV = Path(sys.executable).with_name("arv")


def run_arv(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ARV), *map(str, args)], capture_output=True, text=True, timeout=120)


def _picture(path: Path, *, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def test_compiles_several_images_into_one_mind_in_order(tmp_path: Path) -> None:
    wide = _picture(tmp_path / "wide.png", seed=1, size=(360, 240))
    tall = _picture(tmp_path / "tall.jpg", seed=2, size=(240, 330))
    out = tmp_path / "targets.mind"

    result = run_arv("compile", wide, tall, "-o", out)

    assert result.returncode == 0, result.stderr
    targets = decode_mind(out.read_bytes())
    assert [(t["targetImage"]["width"], t["targetImage"]["height"]) for t in targets] == [
        (360, 240),
        (240, 330),
    ]
    assert "wide.png:" in result.stdout and "tall.jpg:" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def _run_arv_with_terminal_stderr(*args: str | Path) -> tuple[int, str]:
    """Run arv with stderr on a pseudo-terminal, as in a shell; returns the exit code and stderr."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [str(ARV), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(terminal)
    seen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif child.poll() is not None:
            break
    os.close(controller)
    return child.wait(timeout=120), seen.decode(errors="replace")


def test_a_progress_bar_shows_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    picture = _picture(tmp_path / "photo.png", seed=6)

    code, terminal = _run_arv_with_terminal_stderr("compile", picture, "-o", tmp_path / "out.mind")

    assert code == 0
    assert "finding feature points in photo.png" in terminal
    assert "\u2501" in terminal  # the bar itself


def test_two_runs_write_the_same_bytes(tmp_path: Path) -> None:
    picture = _picture(tmp_path / "photo.jpg", seed=5)

    for name in ("first.mind", "second.mind"):
        assert run_arv("compile", picture, "-o", tmp_path / name).returncode == 0

    assert (tmp_path / "first.mind").read_bytes() == (tmp_path / "second.mind").read_bytes()


def test_json_flag_prints_the_quality_report(tmp_path: Path) -> None:
    out = tmp_path / "card.mind"

    result = run_arv("compile", FIXTURES / "card.png", "-o", out, "--json", "--exact")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (target,) = report["targets"]
    assert target["source"] == "card.png"
    assert target["verdict"] == "good"
    assert (target["width"], target["height"]) == (372, 674)
    # --exact: MindAR's own pyramid, one keyframe per scale.
    assert len(target["keyframes"]) == 7 and len(target["tracking_levels"]) == 2
    assert target["trained"] is False and 0 <= target["findability"] <= 5
    assert report["bytes"] == len(out.read_bytes())


def test_the_default_compile_is_trained_and_smaller_than_exact(tmp_path: Path) -> None:
    trained, exact = tmp_path / "trained.mind", tmp_path / "exact.mind"

    default = run_arv("compile", FIXTURES / "pictarize.jpg", "-o", trained, "--json")
    plain = run_arv("compile", FIXTURES / "pictarize.jpg", "-o", exact, "--exact")

    assert default.returncode == 0 and plain.returncode == 0, default.stderr + plain.stderr
    (target,) = json.loads(default.stdout)["targets"]
    assert target["trained"] is True
    assert 0 <= target["findability"] <= 5 and 0 <= target["found_share"] <= 1
    assert len(trained.read_bytes()) < len(exact.read_bytes())


def _text_file(folder: Path) -> Path:
    (folder / "notes.png").write_text("shopping list\n")
    return folder / "notes.png"


def _svg_file(folder: Path) -> Path:
    (folder / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"/>')
    return folder / "logo.svg"


def _missing_file(folder: Path) -> Path:
    return folder / "missing.jpg"


def _truncated_jpeg(folder: Path) -> Path:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, size=(300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[:5000])
    return folder / "cut.jpg"


def _tiny_picture(folder: Path) -> Path:
    Image.new("RGB", (90, 60)).save(folder / "tiny.png")
    return folder / "tiny.png"


def _blank_picture(folder: Path) -> Path:
    Image.new("RGB", (400, 300), "white").save(folder / "blank.png")
    return folder / "blank.png"


BAD_INPUTS = {
    "text": (_text_file, "not an image file"),
    "svg": (_svg_file, "SVG (vector) images are not supported"),
    "missing": (_missing_file, "cannot read the file"),
    "truncated": (_truncated_jpeg, "truncated or damaged"),
    "too small": (_tiny_picture, "at least 128 px"),
    "blank": (_blank_picture, "too uniform"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_fails_with_one_line_naming_the_file_and_the_problem(tmp_path: Path, kind: str) -> None:
    make, problem = BAD_INPUTS[kind]
    bad = make(tmp_path)
    good = _picture(tmp_path / "good.png", seed=3)
    out = tmp_path / "out.mind"

    result = run_arv("compile", good, bad, "-o", out)

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {bad.name}: ")
    assert problem in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_pixel_limit_can_be_set_on_the_command_line(tmp_path: Path) -> None:
    picture = _picture(tmp_path / "big.png", seed=4, size=(800, 600))

    result = run_arv("compile", picture, "-o", tmp_path / "out.mind", "--max-pixels", "100000")

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: big.png: the image is 800 x 600 px (0.5 MP), more than the limit of 0.1 MP"
    )


def test_the_pixel_limit_is_arv_max_image_pixels_unless_given(tmp_path: Path) -> None:
    picture = _picture(tmp_path / "big.png", seed=4, size=(800, 600))

    result = subprocess.run(
        [str(ARV), "compile", str(picture), "-o", str(tmp_path / "out.mind")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ARV_MAX_IMAGE_PIXELS": "200000"},
    )

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: big.png: the image is 800 x 600 px (0.5 MP), more than the limit of 0.2 MP"
    )


def test_arv_max_image_pixels_defaults_to_the_compilers_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from arv.config import Settings

    monkeypatch.delenv("ARV_MAX_IMAGE_PIXELS", raising=False)
    assert Settings().max_image_pixels == arv.mindar.DEFAULT_MAX_PIXELS
    assert inspect.signature(arv.mindar.compile_targets).parameters["max_pixels"].default == (
        arv.mindar.DEFAULT_MAX_PIXELS
    )


def test_an_unexpected_failure_still_ends_in_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the matcher fell over")

    monkeypatch.setattr(arv.mindar, "compile_targets", broken)
    picture = _picture(tmp_path / "photo.png", seed=7)

    result = CliRunner().invoke(app, ["compile", str(picture), "-o", str(tmp_path / "out.mind")])

    assert result.exit_code == 1
    assert result.stderr == "error: compiling failed unexpectedly (RuntimeError: the matcher fell over)\n"


def test_the_command_defaults_are_the_librarys() -> None:
    # The command repeats them so that `arv --help` need not import numpy and OpenCV.
    assert command.DEFAULT_WORKING_SIDE == arv.mindar.DEFAULT_WORKING_SIDE
    assert command.MIN_WORKING_SIDE == MIN_SHORTEST_SIDE
