"""The reconcile loop: on a trigger or every interval, snapshot, plan, and apply the plan concurrently.

A pass writes only what differs from what the cluster already says: a nomination when the pod
names another node, a pod's reason for waiting (condition and event, handed to `Reasons`) when
it changes. What it applies is assumed in the cache until the watch confirms it, so the next
pass, which may run before the watch catches up, never plans the same pod twice. Events and
reasons are written in the background (`recorder`): a pass waits only for binds, evictions and
nominations.

Writes go in two steps (SPEC 6): first nominations, binds and cleared nominations; then the
evictions of the preemptors whose unit has every nomination in place. A nomination that could
not be written (refused, a 5xx, a timeout, the lease lost, SIGTERM) evicts nobody, so no victim
terminates for a preemptor that does not hold its node.

Every write's answer is a value (`kube.Answer`); each is absorbed here, and the code says why.
A refusal that will not pass by itself is logged once with the API server's message, shown on
the pod, and the pod is held back from planning for a while (`Cache.hold_back`).

The plan is computed in a worker thread, so that the event loop, which renews the lease, never
waits behind a long plan; `now` for the plan is the API server's time (from its Date headers),
since it is compared with timestamps the server wrote.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from custom_scheduler import convert
from custom_scheduler.cache import Cache
from custom_scheduler.kube import Answer, Kube, Outcome
from custom_scheduler.metrics import Metrics
from custom_scheduler.model import GROUP_NAME, Bind, Evict, Nominate, Plan, Pod, Snapshot, Unschedulable
from custom_scheduler.planner import plan
from custom_scheduler.recorder import Reasons, Recorder, now
from custom_scheduler.settings import Settings
from custom_scheduler.telemetry import Once

log = structlog.get_logger(component="reconciler")

Step = Callable[[], Awaitable[None]]


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
    writes: int = 0  # binds, evictions and nominations sent (or set or cleared), whatever the answer

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
        changes: Callable[[], int] | None = None,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        # How many relevant changes the informers have seen: a pass after one tries every waiting
        # pod again (an attempt, for the metrics); one after none only repeats the last.
        self.changes = changes or (lambda: 0)
        self._changes_seen = -1
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.on_pass = on_pass
        # Their workers run beside the passes (`service` starts them): what the scheduler tells
        # people never holds up a pass.
        self.recorder = Recorder(kube, workers=settings.event_workers, component=settings.scheduler_name)
        self.reasons = Reasons(kube, self.recorder, workers=settings.reason_workers)
        self.passes = 0
        # Preemptor -> what its condition says about its refused eviction: said once, and kept
        # on the condition (instead of "nominated ...") while its evictions are refused.
        self._refusals: dict[str, str] = {}
        self._refused = Once()  # (pod uid, what was refused, message) already logged

    def _plan(self, snapshot: Snapshot) -> Plan:
        # A pass allocates much and keeps little: with the collector paused it does not scan
        # the whole cache (50,000 pods) over and over; it runs once, after the pass.
        gc.disable()
        try:
            return plan(snapshot, settings=self.settings)
        finally:
            gc.enable()

    async def run_pass(self) -> tuple[PassStats, Plan]:
        """Plan on one snapshot and apply the result; return what was done."""
        started = time.perf_counter()
        changes = self.changes()
        changed, self._changes_seen = changes != self._changes_seen, changes
        snapshot = self.cache.snapshot(now=self.clock())
        # The planner tells a victim stuck terminating by comparing `now` with its
        # deletionTimestamp, which the API server wrote: so `now` is the server's time.
        server_now = self.kube.server_time() if self.kube is not None else time.time()
        snapshot = Snapshot(snapshot.nodes, snapshot.pods, snapshot.priority_classes, now=server_now)
        # In a worker thread: the loop goes on renewing the lease and reading watches meanwhile.
        result = await anyio.to_thread.run_sync(self._plan, snapshot, abandon_on_cancel=True)
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
        # A pass is news when it did something (in a dry run: when it would have); an idle one,
        # every interval, is said only with --log-level debug.
        did = stats.writes if not self.settings.dry_run else stats.binds + stats.evictions + stats.nominations
        (log.info if did else log.debug)(
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
            gated = [p.key for p in snapshot.pods if p.gated and self._ours(p) and not p.node_name]
            self.metrics.observe_pass(
                result,
                seconds=stats.duration_ms / 1000,
                gangs=gangs,
                changed=changed,
                backoff=len(self.cache.held(now=self.clock())),
                gated=gated,
            )
        if self.on_pass is not None:
            self.on_pass(stats, result)
        return stats, result

    def _ours(self, pod: Pod) -> bool:
        """Whether the pod is this scheduler's, in its namespace."""
        namespace = self.settings.namespace
        return pod.scheduler_name == self.settings.scheduler_name and namespace in (None, pod.namespace)

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

    async def _run(self, steps: list[Step]) -> None:
        """Run the steps, in order, on at most `max_concurrency` workers.

        A fixed set of workers takes the steps: a pass of 5,000 binds holds `max_concurrency`
        tasks, not 5,000. A step raises only what ends the term or the process (`NotLeading`,
        `ApiError`): every other answer is a value its step has dealt with.
        """
        todo = iter(steps)

        async def worker() -> None:
            for step in todo:
                await step()

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.settings.max_concurrency, len(steps))):
                tg.start_soon(worker)

    async def _apply(self, result: Plan, pods: dict[str, Pod], stats: PassStats) -> None:
        nominated = {n.pod for n in result.nominations}
        bound = {b.pod for b in result.binds}
        unschedulable = {u.pod for u in result.unschedulable}
        # Pods held back after a refused write are left out of the plan; what they were told stays.
        held = {p.key for p in self.cache.held(now=self.clock())}
        self.reasons.keep(unschedulable=unschedulable | held, waiting=unschedulable | nominated | held)
        for u in result.unschedulable:
            self.reasons.report(u, pods[u.pod])
        preemptors = {e.preemptor for e in result.evictions}
        self._refusals = {k: v for k, v in self._refusals.items() if k in preemptors}

        # 1. What takes no node from anyone: nominations (reserving freed nodes), binds (on free
        # nodes) and nominations cleared.
        in_place: set[str] = set()  # pods whose nomination is written (or was already there)

        async def nominate(n: Nominate) -> None:
            if await self._nominate(n, pods[n.pod], stats):
                in_place.add(n.pod)

        steps: list[Step] = [lambda n=n: nominate(n) for n in result.nominations]  # type: ignore[misc]
        steps += [lambda b=b: self._bind(b, pods[b.pod], stats) for b in result.binds]  # type: ignore[misc]
        for pod in pods.values():
            if pod.nominated_node and not pod.node_name and pod.key not in nominated and pod.key not in bound:
                steps.append(lambda pod=pod: self._clear_nomination(pod, stats))  # type: ignore[misc]
        await self._run(steps)

        # 2. Evictions, for preemptors whose whole unit holds its nominations (SPEC 6): a victim
        # evicted for a preemptor without one would free a node for nobody, and the next pass
        # would evict a bystander.
        units = _units(result, pods)
        evictions: list[Step] = []
        for e in result.evictions:
            if self.cache.holding(pods[e.pod].uid, now=self.clock()):
                stats.count("eviction_held")  # refused lately (a 500, a policy): tried again later
            elif units.get(e.preemptor) and units[e.preemptor] <= in_place:
                evictions.append(lambda e=e: self._evict(e, pods, stats))  # type: ignore[misc]
            else:
                stats.count("eviction_not_nominated")
                log.info(
                    "eviction_skipped",
                    pod=e.pod,
                    node=e.node,
                    preemptor=e.preemptor,
                    outcome="nomination_not_written",
                )
        await self._run(evictions)

    # -- the writes -------------------------------------------------------------------------

    def _kube(self) -> Kube:
        assert self.kube is not None
        return self.kube

    def _refused_placing(self, what: str, pod: Pod, answer: Answer, stats: PassStats) -> None:
        """A bind or nomination of `pod` was not done: absorb the answer, and say why once."""
        stats.count(f"{what}_{answer.outcome.value}")
        if answer.outcome is Outcome.FAILED:
            # The API server away or failing for a moment: nothing is assumed, and the next pass
            # plans it again.
            log.warning("write_failed", pod=pod.key, write=what, error=answer.message)
        elif answer.outcome is Outcome.REFUSED:
            # Refused for this pod (an admission webhook, a policy): it will not pass by itself.
            # Held back from planning, with a growing delay, and said once (with the server's words).
            delay = self.cache.hold_back(pod.uid, now=self.clock())
            if self._refused.first((pod.uid, what, answer.message)):
                log.warning(
                    f"{what}_refused",
                    pod=pod.key,
                    status=answer.status,
                    error=answer.message,
                    retry_in_s=delay,
                )
        else:  # gone, or changed under us: the watch brings the truth
            log.info(f"{what}_skipped", pod=pod.key, outcome=answer.outcome.value)

    async def _bind(self, b: Bind, pod: Pod, stats: PassStats) -> None:
        await self.reasons.settle(b.pod)
        stats.writes += 1
        answer = await self._kube().bind(
            pod.namespace, pod.name, b.node, convert.binding_body(pod.namespace, pod.name, b.node, pod.uid)
        )
        if answer.ok:
            self.cache.assume_bound(pod.uid, b.node, now=self.clock())
            self.cache.release(pod.uid)
            if self.metrics is not None:
                self.metrics.bound(pod.creation)
            log.info("pod_bound", pod=b.pod, node=b.node)
            await self.recorder.record(pod, type_="Normal", reason="Scheduled", message=b.message)
            return
        if self.metrics is not None:
            self.metrics.attempt("error")
        self._refused_placing("bind", pod, answer, stats)
        if answer.outcome is Outcome.REFUSED:
            # Shown on the pod, in kube-scheduler's words, as its reason for waiting.
            self.reasons.report(Unschedulable(b.pod, f"Binding rejected: {answer.message}"), pod)

    async def _evict(self, e: Evict, pods: dict[str, Pod], stats: PassStats) -> None:
        kube, pod = self._kube(), pods[e.pod]
        stats.writes += 1
        # The mark DisruptionTarget=True is written only once the eviction is accepted: the API
        # server sets it itself as it accepts one (reason EvictionByEvictionAPI), before the pod is
        # deleted, and we then say it was preemption. Marked first, a pod whose eviction a budget
        # refuses pass after pass would flap between marked and not, and show as going while it
        # stays (SPEC 6 v2).
        answer = await kube.evict(
            pod.namespace, pod.name, convert.eviction_body(pod.namespace, pod.name, None, uid=pod.uid)
        )
        if self.metrics is not None:
            self.metrics.evictions.labels(answer.outcome.value).inc()
        if answer.ok:
            self.cache.assume_evicted(pod.uid, now=self.clock())
            self.cache.release(pod.uid)
            self._refusals.pop(e.preemptor, None)
            # Say that it was preemption, so the owner can tell why the pod went (absorbed: the
            # pod may be gone already, and the server's own mark stands).
            condition = convert.pod_condition_patch(
                "DisruptionTarget",
                "True",
                "PreemptionByScheduler",
                f"{self.settings.scheduler_name}: preempting to make room for {e.preemptor}",
                now(),
            )
            await kube.patch_status(pod.namespace, pod.name, condition)
            log.info("pod_evicted", pod=e.pod, node=e.node, preemptor=e.preemptor)
            await self.recorder.record(pod, type_="Normal", reason="Preempted", message=e.message)
            return
        stats.count(f"eviction_{answer.outcome.value}")
        if answer.outcome is Outcome.NOT_FOUND:
            return  # the victim is gone already: what the eviction was for
        if answer.outcome in (Outcome.REFUSED, Outcome.FAILED):
            # Not a budget that may allow it next pass (429): tried again after a growing delay.
            self.cache.hold_back(pod.uid, now=self.clock())
        if self._refused.first((pod.uid, "eviction", answer.message)):
            log.warning(
                "eviction_refused",
                pod=e.pod,
                node=e.node,
                preemptor=e.preemptor,
                outcome=answer.outcome.value,
                status=answer.status,
                error=answer.message,
            )
        preemptor = pods.get(e.preemptor)
        if preemptor is None:
            return
        # Tell the preemptor why it waits (an event and its condition), once per refusal; the next
        # pass tries again (a budget may allow it then).
        message = convert.cut(
            f"eviction of {e.pod} from node {e.node} was refused: {answer.message}; the next pass tries again"
        )
        if self._refusals.get(e.preemptor) == message:
            return
        self._refusals[e.preemptor] = message
        patch = convert.pod_condition_patch("PodScheduled", "False", "Unschedulable", message, now())
        if (await kube.patch_status(preemptor.namespace, preemptor.name, patch)).ok:
            self.reasons.mark(e.preemptor, message)
        await self.recorder.record(preemptor, type_="Warning", reason="FailedScheduling", message=message)

    async def _nominate(self, n: Nominate, pod: Pod, stats: PassStats) -> bool:
        """Write the nomination (and the pod's condition) unless in place; whether it is in place."""
        await self.reasons.settle(n.pod)
        patch: dict[str, Any] = {}
        if pod.nominated_node != n.node:
            patch = convert.nomination_patch(n.node)
        # While its evictions are refused, the condition says so rather than "nominated ...".
        message = self._refusals.get(n.pod) or n.message
        if pod.scheduled_message != message and self.reasons.said(n.pod) != message:
            condition = convert.pod_condition_patch("PodScheduled", "False", "Unschedulable", message, now())
            patch.setdefault("status", {}).update(condition["status"])
        if not patch:
            return True
        stats.writes += 1
        answer = await self._kube().patch_status(pod.namespace, pod.name, patch)
        if not answer.ok:
            self._refused_placing("nomination", pod, answer, stats)
            return False
        self.cache.release(pod.uid)
        self.reasons.mark(n.pod, message)
        if pod.nominated_node != n.node:
            self.cache.assume_nominated(pod.uid, n.node, now=self.clock())
            log.info("pod_nominated", pod=n.pod, node=n.node, waiting_for=list(n.waiting_for))
            # kubectl describe shows why the pod is not bound yet, as kube-scheduler's users expect.
            told = n.message[:1].upper() + n.message[1:]
            await self.recorder.record(pod, type_="Normal", reason="Nominated", message=told)
        return True

    async def _clear_nomination(self, pod: Pod, stats: PassStats) -> None:
        stats.writes += 1
        answer = await self._kube().patch_status(pod.namespace, pod.name, convert.nomination_patch(None))
        if answer.ok:
            self.cache.assume_nominated(pod.uid, "", now=self.clock())
            log.info("nomination_cleared", pod=pod.key, node=pod.nominated_node)
        else:
            self._refused_placing("nomination", pod, answer, stats)


def _units(result: Plan, pods: dict[str, Pod]) -> dict[str, set[str]]:
    """Each nominated pod -> the nominated pods of its unit (its gang's, or itself alone).

    A gang's evictions may name any member as their preemptor, and free nodes for the others:
    all of them must hold their nominations before any victim goes.
    """
    gangs: dict[tuple[str, str], set[str]] = {}
    for n in result.nominations:
        pod = pods[n.pod]
        group = pod.annotations.get(GROUP_NAME)
        gangs.setdefault((pod.namespace, group) if group else (n.pod, ""), set()).add(n.pod)
    return {member: unit for unit in gangs.values() for member in unit}
