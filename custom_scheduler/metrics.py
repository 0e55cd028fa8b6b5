"""Health and metrics on one port: `/healthz`, `/livez`, `/readyz` and `/metrics` (Prometheus).

A name borrowed from kube-scheduler keeps kube-scheduler's meaning, so its dashboards and alerts
read ours right: `scheduler_schedule_attempts_total{result,profile}` counts a pod's attempt when
its outcome changes or it is tried again after a change in the cluster (an idle pass, planning the
same pods to the same end, attempts nothing, as kube-scheduler leaves such pods in its
unschedulable queue); `scheduler_pending_pods{queue}` has kube-scheduler's queues;
`scheduler_preemption_attempts_total` counts every failed attempt (kube-scheduler evaluates
preemption after each); `scheduler_preemption_victims` the victims of each preemptor. Everything
else is ours, named `custom_scheduler_*`; `process_*` as every Prometheus client exports them, and
`leader_election_master_status{name}` (client-go's) with leader election. No `*_created` series.

Readiness means "the informers have synced" (a follower is ready too: its cache is warm, so it
can take over at once). Liveness fails when the reconcile loop of a leader has not finished a
pass for far longer than its interval: a stuck process should be restarted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.aiohttp import make_aiohttp_handler

from custom_scheduler.model import Plan

log = structlog.get_logger(component="metrics")

# A `*_created` series beside every counter and histogram doubles what is scraped, and
# kube-scheduler has none: none here either (a process-wide setting of the client).
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_VICTIM_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # kube-scheduler's: ExponentialBuckets(1, 2, 7)
QUEUES = ("active", "backoff", "unschedulable", "gated")  # kube-scheduler's scheduler_pending_pods


@dataclass
class Metrics:
    """The scheduler's metrics, in a registry of their own (tests make as many as they like).

    `profile` is the scheduler's name, the label kube-scheduler gives its attempts.
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    profile: str = "custom-scheduler"

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.attempts = Counter(
            "scheduler_schedule_attempts_total",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not "
            "be scheduled, while 'error' means an internal scheduler problem.",
            ["result", "profile"],
            registry=r,
        )
        self.pending = Gauge(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type: 'unschedulable' were attempted and failed "
            "(nominated pods included); 'backoff' are held back after a refused write; 'gated' have "
            "scheduling gates; 'active' are waiting for the next pass (none, after one).",
            ["queue"],
            registry=r,
        )
        self.preemption_attempts = Counter(
            "scheduler_preemption_attempts_total",
            "Total preemption attempts in the cluster till now: one per failed scheduling attempt.",
            registry=r,
        )
        self.preemption_victims = Histogram(
            "scheduler_preemption_victims",
            "Number of selected preemption victims, per preemptor.",
            buckets=_VICTIM_BUCKETS,
            registry=r,
        )
        self.preemptions = Counter(
            "custom_scheduler_preemptions_total",
            "Preemptors that had victims selected (a gang's members each count).",
            registry=r,
        )
        self.nominated = Gauge(
            "custom_scheduler_nominated_pods",
            "Pods nominated to a node after the last pass (waiting for victims or for their gang).",
            registry=r,
        )
        self.pass_duration = Histogram(
            "custom_scheduler_pass_duration_seconds",
            "How long a pass took: snapshot, plan and apply.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.bind_latency = Histogram(
            "custom_scheduler_pod_creation_to_bind_seconds",
            "From a pod's creationTimestamp to its bind by this scheduler.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gangs_placed = Counter(
            "custom_scheduler_gangs_placed_total",
            "Gangs with members bound by a pass (a gang is bound all together).",
            registry=r,
        )
        self.gangs_waiting = Gauge(
            "custom_scheduler_gangs_waiting",
            "Gangs with members left pending after the last pass.",
            registry=r,
        )
        self.evictions = Counter(
            "custom_scheduler_evictions_total",
            "Evictions by result: ok, too_many_requests, not_found, conflict, refused, failed.",
            ["result"],
            registry=r,
        )
        self.leader = Gauge(
            "custom_scheduler_leader",
            "1 while this replica runs passes (it holds the lease, or runs alone).",
            registry=r,
        )
        self.passes = Counter("custom_scheduler_passes_total", "Passes run.", registry=r)
        # SPEC 6a names this one; kube-scheduler has no metric of the name.
        self.reserved_nodes = Gauge(
            "scheduler_reserved_nodes",
            "Nodes the starving unit holds idle while it gathers its need (SPEC 6a), after the last pass.",
            registry=r,
        )
        self.reserving_wait = Gauge(
            "custom_scheduler_reserving_unit_wait_seconds",
            "How long the unit that reserves nodes has waited (0 when none reserves).",
            registry=r,
        )
        self._lease: Gauge | None = None
        # What each waiting pod's last attempt ended in (its reason, or where it is nominated).
        self._outcomes: dict[str, str] = {}

    def lease(self, name: str, *, leading: bool) -> None:
        """client-go's `leader_election_master_status{name}`: 1 while this replica holds the lease."""
        if self._lease is None:
            self._lease = Gauge(
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
                "1 indicates master. 'name' is the string used to identify the lease.",
                ["name"],
                registry=self.registry,
            )
        self._lease.labels(name).set(1 if leading else 0)

    def attempt(self, result: str, count: int = 1) -> None:
        """Count attempts to schedule pods that ended in `result` (scheduled, unschedulable, error)."""
        self.attempts.labels(result, self.profile).inc(count)

    def observe_pass(
        self,
        plan: Plan,
        *,
        seconds: float,
        gangs: dict[str, str],
        changed: bool = True,
        backoff: int = 0,
        gated: Collection[str] = (),
    ) -> None:
        """Count what a pass decided.

        `gangs` maps a member pod to its gang; `changed` says whether something relevant changed in
        the cluster since the last pass (every waiting pod is then tried again, as kube-scheduler
        moves its unschedulable pods back to its active queue); `backoff` counts pods held back after
        a refused write, `gated` our pending pods with scheduling gates.
        """
        self.passes.inc()
        self.pass_duration.observe(seconds)
        reserving = plan.reserving
        self.reserved_nodes.set(reserving.held if reserving is not None else 0)
        self.reserving_wait.set(reserving.waited if reserving is not None else 0)
        outcomes = {u.pod: u.reason for u in plan.unschedulable}
        outcomes.update((n.pod, f"nominated to {n.node}") for n in plan.nominations)
        last = self._outcomes
        failed = sum(1 for pod, said in outcomes.items() if changed or last.get(pod) != said)
        self._outcomes = outcomes
        if failed:
            self.attempt("unschedulable", failed)
            self.preemption_attempts.inc(failed)
        self.pending.labels("active").set(0)
        self.pending.labels("backoff").set(backoff)
        self.pending.labels("unschedulable").set(len(outcomes))
        self.pending.labels("gated").set(len(gated))
        self.nominated.set(len(plan.nominations))
        by_preemptor: dict[str, int] = {}
        for e in plan.evictions:
            by_preemptor[e.preemptor] = by_preemptor.get(e.preemptor, 0) + 1
        for count in by_preemptor.values():
            self.preemptions.inc()
            self.preemption_victims.observe(count)
        # Bound, not nominated: a nominated gang is in every plan until its victims are gone.
        self.gangs_placed.inc(len({gangs[b.pod] for b in plan.binds if b.pod in gangs}))
        self.gangs_waiting.set(len({gangs[u.pod] for u in plan.unschedulable if u.pod in gangs}))

    def bound(self, created: float, *, now: float | None = None) -> None:
        """A bind succeeded for a pod created at `created` (epoch seconds; 0 when unknown)."""
        self.attempt("scheduled")
        if created > 0:
            self.bind_latency.observe(max((now or time.time()) - created, 0.0))


@dataclass
class Health:
    """What the probes report: synced informers, and a recent pass while leading."""

    stall_after: float = 60.0
    synced: Callable[[], bool] = lambda: False
    leading: Callable[[], bool] = lambda: True
    last_pass: float = field(default_factory=time.monotonic)

    def passed(self) -> None:
        """A pass finished."""
        self.last_pass = time.monotonic()

    def live(self) -> tuple[bool, str]:
        """(alive, why not)."""
        idle = time.monotonic() - self.last_pass
        if self.synced() and self.leading() and idle > self.stall_after:
            return False, f"no pass finished for {idle:.0f}s"
        return True, "ok"


def app(metrics: Metrics, health: Health) -> web.Application:
    """The aiohttp application serving the probes and the metrics."""

    async def live(_: web.Request) -> web.Response:
        ok, why = health.live()
        return web.Response(status=200 if ok else 500, text=why)

    async def ready(_: web.Request) -> web.Response:
        ok = health.synced()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "informers not synced")

    application = web.Application()
    application.router.add_get("/healthz", live)
    application.router.add_get("/livez", live)
    application.router.add_get("/readyz", ready)
    application.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    return application


class ServeError(Exception):
    """The health and metrics port cannot be served (in use, not permitted, no such address)."""


# kube-scheduler's --bind-address: blank or an unspecified address means every interface and family.
_EVERYWHERE = ("", "0.0.0.0", "::")


async def serve(metrics: Metrics, health: Health, *, host: str, port: int) -> web.AppRunner:
    """Start serving on `host:port`; the caller cleans up the returned runner.

    Raises ServeError, with one line that names the address and the problem, when it cannot listen.
    """
    runner = web.AppRunner(app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, None if host in _EVERYWHERE else host, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        why = (os.strerror(error.errno) if error.errno else str(error)).lower()
        raise ServeError(f"cannot listen on {host or '0.0.0.0'}:{port}: {why}") from None
    log.info("health_serving", host=host, port=port, paths=["/healthz", "/livez", "/readyz", "/metrics"])
    return runner
