"""Structured logs: JSON lines in production, readable colours on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from arv.config import Settings


def configure_logging(settings: Settings) -> None:
    json_logs = settings.json_logs if settings.json_logs is not None else not sys.stderr.isatty()
    level = logging.getLevelName(settings.log_level.upper())
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            level if isinstance(level, int) else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


class _CurrentStderr:
    """`sys.stderr` as it is at each write, not when the logger was made: cached loggers outlive a
    redirected stream (a test's captured output, a daemon's reopened log)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
