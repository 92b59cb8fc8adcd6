"""Where the MindAR reference fixtures are: `shared/fixtures/mindar` beside the checkout, or
ARV_TEST_MINDAR_FIXTURES."""

import os
from pathlib import Path

MINDAR_FIXTURES = Path(
    os.environ.get("ARV_TEST_MINDAR_FIXTURES", Path(__file__).resolve().parents[3] / "shared/fixtures/mindar")
)
