"""Leader election on a `coordination.k8s.io/v1` Lease, with kube-scheduler's defaults.

Of several replicas one leads (runs the reconcile loop); the others keep their caches warm and
try for the lease every `retry_period`. A lease whose holder has not renewed it for
`lease_duration`, as observed on *this* replica's clock (never by comparing another machine's
timestamps to ours), is taken over. The leader renews every `retry_period`; if it cannot renew
for `renew_deadline`, or sees that another replica holds the lease, it stops leading at once
(its work is cancelled) and becomes a candidate again. On a clean shutdown it releases the
lease, so that another replica takes over at once. Updates carry the Lease's resourceVersion,
so two candidates never both win.

No write may leave a replica whose lease is not known valid (`lease_valid`, the fence that
`Kube` asks before each write): valid means leading, and less than `renew_deadline` since the
last successful renewal was *sent*, on the monotonic clock. Another replica takes over only
`lease_duration` after it first saw that renewal, which it cannot see before it was sent; the
difference (5 s by default) is the margin for a write checked just in time to reach the server.
A replica that stalled (a long GC pause, a frozen VM, SIGSTOP) and wakes after that finds its
writes refused before they are sent, whatever its tasks were about to do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from custom_scheduler.kube import Kube, NotLeading, retryable

log = structlog.get_logger(component="leader")


@dataclass(frozen=True)
class LeaseConfig:
    """Which Lease, who we are, and the timing (seconds)."""

    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """Acquire, hold and release one Lease; run work only while holding it."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.kube, self.config, self.clock = kube, config, clock
        self.on_change = on_change
        self.leading = False
        self.deposed = False  # another holder was seen while we led: stop at once
        self.valid_until = 0.0  # monotonic: writes may be sent before this moment, not after
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.path = f"{config.namespace}/{config.name}"

    def lease_valid(self) -> bool:
        """Whether this replica may write now: it leads, and its lease is known valid."""
        return self.leading and self.clock() < self.valid_until

    def _set_leading(self, leading: bool) -> None:
        if not leading:
            self.valid_until = 0.0
        if leading != self.leading:
            self.leading = leading
            if self.on_change is not None:
                self.on_change(leading)

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True if we hold the lease afterwards."""
        c = self.config
        try:
            lease = await self.kube.get_lease(c.namespace, c.name)
            now = self.clock()
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": c.name, "namespace": c.namespace},
                    "spec": self._spec(None),
                }
                sent = self.clock()
                return await self.kube.create_lease(c.namespace, body) and self._renewed(sent)
            spec: dict[str, Any] = lease.get("spec") or {}
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, now
            duration = float(spec.get("leaseDurationSeconds") or c.lease_duration)
            if holder and holder != c.identity and now < self._observed_at + duration:
                # Someone else holds it and renewed it recently. If we thought we led, we do not,
                # and write nothing more from this moment.
                self.deposed = self.leading
                self.valid_until = 0.0
                return False
            lease["spec"] = self._spec(spec)
            # Validity counts from the moment the renewal leaves, not from its answer: no other
            # replica can have seen it earlier.
            sent = self.clock()
            return await self.kube.update_lease(c.namespace, c.name, lease) and self._renewed(sent)
        except Exception as error:
            # The API server away or overloaded: this attempt failed, the next may not; the
            # validity runs out meanwhile. Anything else (401, 403) ends the process.
            if not retryable(error):
                raise
            log.warning("lease_attempt_failed", lease=self.path, error=f"{type(error).__name__}: {error}")
            return False

    def _renewed(self, sent: float) -> bool:
        self.valid_until = sent + self.config.renew_deadline
        return True

    def _spec(self, current: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        ours = current is not None and current.get("holderIdentity") == self.config.identity
        transitions = int((current or {}).get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "acquireTime": (current or {}).get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or current is None else transitions + 1,
        }

    async def _hold_within(self, seconds: float) -> bool:
        """Try every retry period until we hold the lease (True) or `seconds` pass (False)."""
        with anyio.move_on_after(seconds):
            while True:
                if await self.try_acquire_or_renew():
                    return True
                if self.deposed:
                    return False
                await anyio.sleep(self.config.retry_period)
        return False

    async def _renew_until_lost(self) -> None:
        """Renew every retry period; return once the lease is no longer known valid."""
        while True:
            await anyio.sleep(self.config.retry_period)
            if not await self._hold_within(max(self.valid_until - self.clock(), 0.0)):
                return

    async def _term(self, lead: Callable[[], Coroutine[Any, Any, None]], scope: anyio.CancelScope) -> None:
        """Run `lead`; a write that found the lease no longer valid ends the term there and then."""
        try:
            await lead()
        except* NotLeading:
            log.warning("writes_stopped", lease=self.path, identity=self.config.identity)
            scope.cancel()

    async def release(self) -> None:
        """Give the lease up (clean shutdown), so that another replica need not wait it out."""
        self.valid_until = 0.0  # nothing more is written from here
        c = self.config
        with anyio.move_on_after(5, shield=True):
            lease = await self.kube.get_lease(c.namespace, c.name)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == c.identity:
                lease["spec"].update(
                    {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro_time()}
                )
                await self.kube.update_lease(c.namespace, c.name, lease)
                log.info("lease_released", lease=self.path, identity=c.identity)

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: become leader, run `lead` while leading; stop it at once when the lease is lost."""
        c = self.config
        log.info("lease_candidate", lease=self.path, identity=c.identity)
        while True:
            await self._hold_within(math.inf)
            self._set_leading(True)
            log.info("leader_elected", lease=self.path, identity=c.identity)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._term, lead, tg.cancel_scope)
                    await self._renew_until_lost()
                    tg.cancel_scope.cancel()
                log.warning("leadership_lost", lease=self.path, identity=c.identity)
            except BaseException:
                if self.leading:
                    await self.release()
                raise
            finally:
                self._set_leading(False)
                self.deposed = False
