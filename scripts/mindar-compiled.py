#!/usr/bin/env python3
"""Makes again the committed .mind files MindAR's own compiler writes for the pictures the tests hand
it (tests/mindar_client/compiled/, read by tests/support/mindar_client.py), or checks them.

    .venv/bin/python scripts/mindar-compiled.py          # compile each picture, write its file
    .venv/bin/python scripts/mindar-compiled.py --check  # compile each again, compare the bytes

A file is named by the SHA-256 of the compiler's files and the exact pixels handed over, so a picture
or a compiler that changed is compiled in the test again instead of reading an old file; run this
after such a change, and commit what it writes. Files no picture names any more are removed.
Exit status 1 under --check when a file is missing, left over, or not what MindAR compiles now.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.mindar import test_real_client_agrees, test_tracking  # noqa: E402
from tests.support.mindar_client import (  # noqa: E402
    COMPILED_DIR,
    compile_with_mindar,
    compiled_path,
    picture_as_seen,
)


def pictures_the_tests_compile() -> dict[str, list[np.ndarray]]:
    """Each list of pictures a test hands MindAR's compiler through `mind_compiled_by_mindar`."""
    real_client = test_real_client_agrees
    lists = {
        name: [picture_as_seen(path)]
        for name, path in real_client.TARGET_PICTURES.items()
        if name not in real_client.MINDAR_REFERENCES
    }
    lists["tracking photo"] = [picture_as_seen(test_tracking.PHOTO)]
    return lists


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare with a fresh compile, write nothing")
    args = parser.parse_args()
    COMPILED_DIR.mkdir(exist_ok=True)
    wanted: dict[Path, tuple[str, list[np.ndarray]]] = {}
    for name, pictures in pictures_the_tests_compile().items():
        wanted.setdefault(compiled_path(pictures), (name, pictures))
    # Two compiles at a time, one a core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        compiled = list(pool.map(lambda entry: compile_with_mindar(entry[1]).data, wanted.values()))
    problems = []
    for (path, (name, _)), data in zip(wanted.items(), compiled, strict=True):
        if not args.check:
            path.write_bytes(data)
            print(f"{name}: wrote {path.name} ({len(data)} bytes)")
        elif not path.is_file():
            problems.append(f"{name}: {path.name} missing")
        elif path.read_bytes() != data:
            problems.append(f"{name}: {path.name} differs from what MindAR compiles now")
        else:
            print(f"{name}: {path.name} equals what MindAR compiles now ({len(data)} bytes)")
    for left_over in sorted(set(COMPILED_DIR.glob("*.mind")) - set(wanted)):
        if args.check:
            problems.append(f"{left_over.name} is no picture's")
        else:
            left_over.unlink()
            print(f"removed {left_over.name}, no picture's")
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
