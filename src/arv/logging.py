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
        # The process's real standard error, not `sys.stderr` as it is now: a worker redirects that
        # into logging (each line would be wrapped again), and a test's capture of it is closed
        # while cached loggers still hold it.
        logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
