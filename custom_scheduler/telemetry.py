"""Structured logs: JSON lines for machines, a readable console form for people at a terminal.

Every line has `event` (a stable snake_case fact such as `pod_bound`), `level`, `timestamp`
(UTC, ISO 8601) and `component`, plus the event's own keys, so `jq` can answer "why is my pod
pending?" (see README, "Reading the logs").
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure_logging(*, fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog: `json`, `console`, or `auto` (console on a terminal, JSON otherwise)."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
