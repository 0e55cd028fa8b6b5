"""The reconcile loop: on a trigger or every interval, snapshot, plan, and apply the plan concurrently.

A pass writes only what differs from what the cluster already says: a nomination when the pod
names another node, a pod's reason for waiting (condition and event, handed to `Reasons`) when
it changes. What it applies is assumed in the cache until the watch confirms it, so the next
pass, which may run before the watch catches up, never plans the same pod twice. Events and
reasons are written in the background (`recorder`): a pass waits only for binds, evictions and
nominations.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from custom_scheduler import convert
from custom_scheduler.cache import Cache
from custom_scheduler.informers import retryable
from custom_scheduler.kube import Kube, Outcome
from custom_scheduler.metrics import Metrics
from custom_scheduler.model import GROUP_NAME, Bind, Evict, Nominate, Plan, Pod
from custom_scheduler.planner import plan
from custom_scheduler.recorder import Reasons, Recorder, now
from custom_scheduler.settings import Settings

log = structlog.get_logger(component="reconciler")


@dataclass
class PassStats:
    """What one pass did, for the `pass_finished` log line and metrics."""

    binds: int = 0
    nominations: int = 0
    evictions: int = 0
    pending: int = 0
    nodes: int = 0
    pods: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    plan_ms: float = 0.0
    duration_ms: float = 0.0

    def count(self, what: str) -> None:
        """Count an expected outcome such as `bind_conflict`."""
        self.outcomes[what] = self.outcomes.get(what, 0) + 1


class Reconciler:
    """One pass at a time: snapshot the cache, plan, apply (or, in dry-run, only log)."""

    def __init__(
        self,
        kube: Kube | None,
        cache: Cache,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_pass: Callable[[PassStats, Plan], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.on_pass = on_pass
        # Their workers run beside the passes (`service` starts them): what the scheduler tells
        # people never holds up a pass.
        self.recorder = Recorder(kube, workers=settings.event_workers)
        self.reasons = Reasons(kube, self.recorder, workers=settings.reason_workers)
        self.passes = 0

    async def run_pass(self) -> tuple[PassStats, Plan]:
        """Plan on one snapshot and apply the result; return what was done."""
        started = time.perf_counter()
        snapshot = dataclasses.replace(self.cache.snapshot(now=self.clock()), now=time.time())
        # A pass allocates much and keeps little: with the collector paused it does not scan
        # the whole cache (50,000 pods) over and over; it runs once, after the pass.
        gc.disable()
        try:
            result = plan(snapshot, settings=self.settings)
        finally:
            gc.enable()
        stats = PassStats(
            nodes=len(snapshot.nodes),
            pods=len(snapshot.pods),
            binds=len(result.binds),
            nominations=len(result.nominations),
            evictions=len(result.evictions),
            pending=len(result.unschedulable) + len(result.nominations),
            plan_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        pods = {p.key: p for p in snapshot.pods if p.scheduler_name == self.settings.scheduler_name}
        if self.settings.dry_run or self.kube is None:
            self._log_dry_run(result)
        else:
            await self._apply(result, pods, stats)
        self.passes += 1
        stats.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "pass_finished",
            binds=stats.binds,
            nominations=stats.nominations,
            evictions=stats.evictions,
            pending=stats.pending,
            nodes=stats.nodes,
            pods=stats.pods,
            plan_ms=stats.plan_ms,
            duration_ms=stats.duration_ms,
            **stats.outcomes,
        )
        if self.metrics is not None:
            gangs = {
                p.key: f"{p.namespace}/{p.annotations[GROUP_NAME]}"
                for p in snapshot.pods
                if GROUP_NAME in p.annotations
            }
            self.metrics.observe_pass(result, seconds=stats.duration_ms / 1000, gangs=gangs)
        if self.on_pass is not None:
            self.on_pass(stats, result)
        return stats, result

    def _log_dry_run(self, result: Plan) -> None:
        for b in result.binds:
            log.info("pod_bound", pod=b.pod, node=b.node, dry_run=True)
        for n in result.nominations:
            log.info("pod_nominated", pod=n.pod, node=n.node, dry_run=True)
        for e in result.evictions:
            log.info("pod_evicted", pod=e.pod, node=e.node, preemptor=e.preemptor, dry_run=True)
        for u in result.unschedulable:
            if self.reasons.said(u.pod) != u.reason:
                self.reasons.mark(u.pod, u.reason)
                log.info("pod_unschedulable", pod=u.pod, reason=u.reason, dry_run=True)

    async def _apply(self, result: Plan, pods: dict[str, Pod], stats: PassStats) -> None:
        async def guarded(step: Callable[[], Awaitable[None]]) -> None:
            try:
                await step()
            except Exception as error:
                # The API server away for a moment (restarting, overloaded): the write did
                # not happen, nothing is assumed, and the next pass plans it again.
                if not retryable(error):
                    raise
                stats.count("write_unavailable")
                log.warning("write_failed", error=f"{type(error).__name__}: {error}")

        nominated = {n.pod for n in result.nominations}
        bound = {b.pod for b in result.binds}
        unschedulable = {u.pod for u in result.unschedulable}
        self.reasons.keep(unschedulable=unschedulable, waiting=unschedulable | nominated)
        for u in result.unschedulable:
            self.reasons.report(u, pods[u.pod])
        # In this order: evictions free nodes, nominations reserve them, binds place pods.
        steps: list[Callable[[], Awaitable[None]]] = []
        for e in result.evictions:
            steps.append(lambda e=e: self._evict(e, pods, stats))  # type: ignore[misc]
        for n in result.nominations:
            steps.append(lambda n=n: self._nominate(n, pods[n.pod], stats))  # type: ignore[misc]
        for b in result.binds:
            steps.append(lambda b=b: self._bind(b, pods[b.pod], stats))  # type: ignore[misc]
        for pod in pods.values():
            if pod.nominated_node and not pod.node_name and pod.key not in nominated and pod.key not in bound:
                steps.append(lambda pod=pod: self._clear_nomination(pod, stats))  # type: ignore[misc]

        # A fixed set of workers takes the steps in order: a pass of 5,000 binds holds
        # `max_concurrency` tasks, not 5,000.
        todo = iter(steps)

        async def worker() -> None:
            for step in todo:
                await guarded(step)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.settings.max_concurrency, len(steps))):
                tg.start_soon(worker)

    # -- the writes -------------------------------------------------------------------------

    def _kube(self) -> Kube:
        assert self.kube is not None
        return self.kube

    async def _bind(self, b: Bind, pod: Pod, stats: PassStats) -> None:
        await self.reasons.settle(b.pod)
        outcome = await self._kube().bind(
            pod.namespace, pod.name, b.node, convert.binding_body(pod.namespace, pod.name, b.node, pod.uid)
        )
        if outcome is Outcome.OK:
            self.cache.assume_bound(pod.uid, b.node, now=self.clock())
            if self.metrics is not None:
                self.metrics.bound(pod.creation)
            log.info("pod_bound", pod=b.pod, node=b.node)
            await self.recorder.record(pod, type_="Normal", reason="Scheduled", message=b.message)
        else:
            stats.count(f"bind_{outcome.value}")
            if self.metrics is not None:
                self.metrics.attempts.labels("error").inc()
            log.info("bind_skipped", pod=b.pod, node=b.node, outcome=outcome.value)

    async def _evict(self, e: Evict, pods: dict[str, Pod], stats: PassStats) -> None:
        kube, pod = self._kube(), pods[e.pod]
        condition = convert.pod_condition_patch(
            "DisruptionTarget",
            "True",
            "PreemptionByScheduler",
            f"{self.settings.scheduler_name}: preempting to make room for {e.preemptor}",
            now(),
        )
        outcome = await kube.patch_status(pod.namespace, pod.name, condition)
        if outcome is Outcome.OK:
            outcome = await kube.evict(
                pod.namespace, pod.name, convert.eviction_body(pod.namespace, pod.name, None, uid=pod.uid)
            )
        if self.metrics is not None:
            self.metrics.evictions.labels(outcome.value).inc()
        if outcome is Outcome.OK:
            self.cache.assume_evicted(pod.uid, now=self.clock())
            # The Eviction API overwrites the condition's reason with EvictionByEvictionAPI; say
            # again that it was preemption, so the owner can tell why the pod went (404: gone).
            await kube.patch_status(pod.namespace, pod.name, condition)
            log.info("pod_evicted", pod=e.pod, node=e.node, preemptor=e.preemptor)
            await self.recorder.record(pod, type_="Normal", reason="Preempted", message=e.message)
            return
        stats.count(f"eviction_{outcome.value}")
        log.warning("eviction_refused", pod=e.pod, node=e.node, preemptor=e.preemptor, outcome=outcome.value)
        preemptor = pods.get(e.preemptor)
        if outcome is Outcome.TOO_MANY and preemptor is not None:
            message = (
                f"eviction of {e.pod} from node {e.node} was refused: a PodDisruptionBudget allows no "
                "more disruptions now; the next pass tries again"
            )
            await self.recorder.record(preemptor, type_="Warning", reason="FailedScheduling", message=message)

    async def _nominate(self, n: Nominate, pod: Pod, stats: PassStats) -> None:
        await self.reasons.settle(n.pod)
        patch: dict[str, Any] = {}
        if pod.nominated_node != n.node:
            patch = convert.nomination_patch(n.node)
        message = n.message
        if pod.scheduled_message != message and self.reasons.said(n.pod) != message:
            condition = convert.pod_condition_patch("PodScheduled", "False", "Unschedulable", message, now())
            patch.setdefault("status", {}).update(condition["status"])
        if not patch:
            return
        outcome = await self._kube().patch_status(pod.namespace, pod.name, patch)
        if outcome is not Outcome.OK:
            stats.count(f"nomination_{outcome.value}")
            return
        self.reasons.mark(n.pod, message)
        if pod.nominated_node != n.node:
            self.cache.assume_nominated(pod.uid, n.node, now=self.clock())
            log.info("pod_nominated", pod=n.pod, node=n.node, waiting_for=list(n.waiting_for))

    async def _clear_nomination(self, pod: Pod, stats: PassStats) -> None:
        outcome = await self._kube().patch_status(pod.namespace, pod.name, convert.nomination_patch(None))
        if outcome is Outcome.OK:
            self.cache.assume_nominated(pod.uid, "", now=self.clock())
            log.info("nomination_cleared", pod=pod.key, node=pod.nominated_node)
        else:
            stats.count(f"nomination_{outcome.value}")
