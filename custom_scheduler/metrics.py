"""Health and metrics on one port: `/healthz`, `/livez`, `/readyz` and `/metrics` (Prometheus).

Metric names follow kube-scheduler's where they mean the same thing, so existing dashboards
and alerts work: `scheduler_schedule_attempts_total{result}`, `scheduler_pending_pods{queue}`,
`scheduler_preemption_attempts_total`, `scheduler_preemption_victims`. Ours besides: pass
duration, creation-to-bind latency, gangs, leadership.

Readiness means "the informers have synced" (a follower is ready too: its cache is warm, so it
can take over at once). Liveness fails when the reconcile loop of a leader has not finished a
pass for far longer than its interval: a stuck process should be restarted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler

from custom_scheduler.model import Plan

log = structlog.get_logger(component="metrics")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class Metrics:
    """The scheduler's metrics, in a registry of their own (tests make as many as they like)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.attempts = Counter(
            "scheduler_schedule_attempts_total",
            "Pods a pass tried to place, by result: scheduled (bound), unschedulable, error.",
            ["result"],
            registry=r,
        )
        self.pending = Gauge(
            "scheduler_pending_pods",
            "Pending pods after the last pass: unschedulable (waiting with a reason) or nominated.",
            ["queue"],
            registry=r,
        )
        self.preemption_attempts = Counter(
            "scheduler_preemption_attempts_total", "Preemptions: units that evicted pods to fit.", registry=r
        )
        self.preemption_victims = Histogram(
            "scheduler_preemption_victims",
            "Pods evicted by one preemption.",
            buckets=(1, 2, 3, 4, 5, 8, 16, 32, 64),
            registry=r,
        )
        self.pass_duration = Histogram(
            "scheduler_pass_duration_seconds",
            "How long a pass took: snapshot, plan and apply.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.bind_latency = Histogram(
            "scheduler_pod_creation_to_bind_seconds",
            "From a pod's creationTimestamp to its bind by this scheduler.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gangs_placed = Counter(
            "scheduler_gangs_placed_total", "Gangs placed (bound or nominated) all together.", registry=r
        )
        self.gangs_waiting = Gauge(
            "scheduler_gangs_waiting", "Gangs with members left pending after the last pass.", registry=r
        )
        self.evictions = Counter(
            "scheduler_evictions_total",
            "Evictions by result: ok, too_many_requests, not_found, conflict, refused, failed.",
            ["result"],
            registry=r,
        )
        self.leader = Gauge(
            "scheduler_leader", "1 while this replica holds the lease (or runs alone).", registry=r
        )
        self.passes = Counter("scheduler_passes_total", "Passes run.", registry=r)
        self.reserved_nodes = Gauge(
            "scheduler_reserved_nodes",
            "Nodes the starving unit holds idle while it gathers its need (SPEC 6a), after the last pass.",
            registry=r,
        )
        self.reserving_wait = Gauge(
            "scheduler_reserving_unit_wait_seconds",
            "How long the unit that reserves nodes has waited (0 when none reserves).",
            registry=r,
        )

    def observe_pass(self, plan: Plan, *, seconds: float, gangs: dict[str, str]) -> None:
        """Count what a pass decided. `gangs` maps a member pod to its gang, for gang counters."""
        self.passes.inc()
        self.pass_duration.observe(seconds)
        reserving = plan.reserving
        self.reserved_nodes.set(reserving.held if reserving is not None else 0)
        self.reserving_wait.set(reserving.waited if reserving is not None else 0)
        self.attempts.labels("unschedulable").inc(len(plan.unschedulable))
        self.pending.labels("unschedulable").set(len(plan.unschedulable))
        self.pending.labels("nominated").set(len(plan.nominations))
        by_preemptor: dict[str, int] = {}
        for e in plan.evictions:
            by_preemptor[e.preemptor] = by_preemptor.get(e.preemptor, 0) + 1
        for count in by_preemptor.values():
            self.preemption_attempts.inc()
            self.preemption_victims.observe(count)
        placed = {
            gangs[p] for p in [b.pod for b in plan.binds] + [n.pod for n in plan.nominations] if p in gangs
        }
        self.gangs_placed.inc(len(placed))
        self.gangs_waiting.set(len({gangs[u.pod] for u in plan.unschedulable if u.pod in gangs}))

    def bound(self, created: float, *, now: float | None = None) -> None:
        """A bind succeeded for a pod created at `created` (epoch seconds; 0 when unknown)."""
        self.attempts.labels("scheduled").inc()
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


async def serve(metrics: Metrics, health: Health, *, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller cleans up the returned runner."""
    runner = web.AppRunner(app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("health_serving", host=host, port=port, paths=["/healthz", "/livez", "/readyz", "/metrics"])
    return runner
