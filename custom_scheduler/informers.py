"""Informers: keep the cache equal to the cluster, and say when something worth a pass changed.

One loop per kind: list, then watch from the list's resourceVersion for a bounded time, resume
from the last resourceVersion (bookmarks keep it fresh), and relist on 410 Gone. After a broken
stream or a failed request it waits (with backoff) and resumes from the last resourceVersion,
as client-go's reflector does; if that version has expired the server says 410 and it relists,
and after three failures in a row it relists anyway. A stream that stays silent past its length
plus `kube.WATCH_SLACK` is dead (a half-open connection) and is resumed the same way, within a
minute. A list whose continue token expires midway is taken again whole (`Kube.pages`). A request
the server rejects for a reason other than load (403 Forbidden, say) is not retried: it ends the
process with a clear message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import structlog

from custom_scheduler.cache import Store
from custom_scheduler.convert import ConvertError
from custom_scheduler.kube import WATCH_SECONDS, Expired, Kind, Kube, retryable

T = TypeVar("T")
log = structlog.get_logger(component="informers")

RELIST_AFTER_FAILURES = 3


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failures in a row: 0.2 s doubling up to 10 s."""
    return float(min(0.2 * 2 ** max(failures - 1, 0), 10.0))


@dataclass
class Informer(Generic[T]):
    """Feeds one kind's store from list and watch; calls `on_change` after relevant changes."""

    kube: Kube
    kind: Kind
    store: Store[T]
    convert: Callable[[dict[str, Any]], T]
    on_change: Callable[[], None]
    watch_seconds: int = WATCH_SECONDS

    def __post_init__(self) -> None:
        self.synced = anyio.Event()
        self.version = ""  # the resourceVersion to watch from; "" means list first

    def _convert(self, obj: dict[str, Any]) -> T | None:
        try:
            return self.convert(obj)
        except ConvertError as error:
            # The API server never sends such objects; if it does, skip the one, keep the rest.
            log.warning("object_skipped", kind=self.kind.name, error=str(error))
            return None

    async def _relist(self) -> None:
        started = time.perf_counter()
        items: list[T] = []
        resource_version = ""
        async for page in self.kube.pages(self.kind):
            if page.restart:
                # The continue token expired midway (etcd compacted): the list was taken again whole.
                log.info("list_restarted", kind=self.kind.name, dropped=len(items))
                items.clear()
            items.extend(item for obj in page.items if (item := self._convert(obj)) is not None)
            resource_version = page.version
        changed = self.store.replace(items)
        log.info(
            "informer_listed",
            kind=self.kind.name,
            items=len(self.store),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if changed or not self.synced.is_set():
            self.on_change()
        self.synced.set()
        self.version = resource_version

    async def _watch(self) -> None:
        """Apply events from `self.version` until the server ends the watch, keeping the version."""
        async for kind_of_event, obj in self.kube.watch(self.kind, self.version, seconds=self.watch_seconds):
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.version = str(version)
            if kind_of_event == "BOOKMARK":
                continue
            item = self._convert(obj)
            if item is None:
                continue
            relevant = self.store.delete(item) if kind_of_event == "DELETED" else self.store.put(item)
            if relevant:
                self.on_change()

    async def run(self) -> None:
        """Forever: list, watch, resume or relist."""
        failures = 0
        while True:
            try:
                if not self.version:
                    await self._relist()
                await self._watch()
                failures = 0
            except Expired:
                log.info("watch_expired", kind=self.kind.name)
                self.version = ""
            except Exception as error:
                # The API server away, overloaded, or a dead stream: resume after a backoff.
                # Anything else (403: RBAC) ends the process.
                if not retryable(error):
                    raise
                failures += 1
                delay = backoff(failures)
                log.warning(
                    "watch_restarted",
                    kind=self.kind.name,
                    error=f"{type(error).__name__}: {error}",
                    failures=failures,
                    retry_in_s=delay,
                )
                if failures >= RELIST_AFTER_FAILURES:
                    self.version = ""
                await anyio.sleep(delay)
