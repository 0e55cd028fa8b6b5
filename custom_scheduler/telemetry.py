"""Structured logs: JSON lines for machines, a readable console form for people at a terminal.

Every line has `event` (a stable snake_case fact such as `pod_bound`), `level`, `timestamp`
(UTC, ISO 8601) and `component`, plus the event's own keys, so `jq` can answer "why is my pod
pending?" (see README, "Reading the logs"). Values are cut to a sane length (a reason naming
2,000 victims, an admission policy's long message): a line stays a line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable, MutableMapping
from typing import Any, TextIO

import structlog

from custom_scheduler.convert import cut

LEVELS = ("debug", "info", "warning", "error")
VALUE_LIMIT = 1024  # characters of one string value in a log line
ITEMS_LIMIT = 20  # items of one list value in a log line


def cut_values(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: cut long strings and long lists (a traceback is left whole)."""
    for key, value in event.items():
        if key == "exception":
            continue
        if isinstance(value, str) and len(value) > VALUE_LIMIT:
            event[key] = cut(value, VALUE_LIMIT)
        elif isinstance(value, list | tuple) and len(value) > ITEMS_LIMIT:
            event[key] = [*value[:ITEMS_LIMIT], f"... ({len(value) - ITEMS_LIMIT} more)"]
        if isinstance(event[key], list):
            event[key] = [cut(v, VALUE_LIMIT) if isinstance(v, str) else v for v in event[key]]
    return event


class Once:
    """What was said already, so that a refusal repeated every pass is logged once.

    Remembers up to `size` keys, then starts afresh (memory stays bounded; a very old refusal may be
    said again).
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: set[Hashable] = set()

    def first(self, key: Hashable) -> bool:
        """True the first time `key` is seen."""
        if key in self._seen:
            return False
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen.add(key)
        return True


def configure_logging(*, fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog: `json`, `console`, or `auto` (console on a terminal, JSON otherwise).

    Lines go to standard output unless `stream` says otherwise: `run` prints nothing else there,
    so `custom-scheduler run | jq ...` reads them as `kubectl logs ... | jq ...` does; the command
    line's own errors go to standard error.
    """
    out = stream if stream is not None else sys.stdout
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
            cut_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
