"""`custom-scheduler run` and live `plan`: the async shell wired together in one task group.

Informers fill the cache and kick the trigger; the reconciler plans and applies; SIGTERM or
SIGINT cancels the group, so the process exits cleanly between writes. An error that concerns
the scheduler itself (`kube.ApiError`: 401, 403 on its own verbs) ends the group too, and the
process with it (Kubernetes restarts it with a fresh cache). With leader election, every write
is fenced by the lease (`Elector.lease_valid`).
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import structlog

from custom_scheduler import convert
from custom_scheduler.cache import Cache
from custom_scheduler.cadence import Trigger, run_passes
from custom_scheduler.informers import Informer
from custom_scheduler.kube import Kube, connect, kinds
from custom_scheduler.leader import Elector, LeaseConfig
from custom_scheduler.metrics import Health, Metrics, serve
from custom_scheduler.model import Plan, Snapshot
from custom_scheduler.reconciler import PassStats, Reconciler
from custom_scheduler.settings import Settings

log = structlog.get_logger(component="service")


def informers(kube: Kube, cache: Cache, settings: Settings, trigger: Trigger) -> list[Informer[Any]]:
    """The informers of the scheduler, feeding `cache` and kicking `trigger`."""
    nodes, pods, others, classes = kinds(scheduler_name=settings.scheduler_name, namespace=settings.namespace)
    return [
        Informer(kube, nodes, cache.nodes, convert.node_from_api, trigger.kick),
        Informer(kube, pods, cache.pods, convert.pod_from_api, trigger.kick),
        Informer(kube, others, cache.others, convert.other_pod_from_api, trigger.kick),
        Informer(kube, classes, cache.classes, convert.priority_class_from_api, trigger.kick),
    ]


async def _wait_for_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
            scope.cancel()
            return


async def run_scheduler(
    kube: Kube,
    settings: Settings,
    *,
    handle_signals: bool = True,
    on_pass: Callable[[PassStats, Plan], None] | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Run informers and the reconcile loop until cancelled (or a signal, when asked to handle them).

    Informers run on every replica; with leader election, passes run only on the leader.
    """
    cache = Cache()
    trigger = Trigger()
    feeds = informers(kube, cache, settings, trigger)
    metrics = metrics or Metrics(profile=settings.scheduler_name)
    elector = elector_for(kube, settings, metrics) if settings.leader_elect else None
    if elector is not None:
        # No write leaves this replica unless its lease is known valid at that moment.
        kube.fence = elector.lease_valid
    health = Health(
        stall_after=max(60.0, 10 * settings.interval),
        synced=lambda: all(i.synced.is_set() for i in feeds),
        leading=lambda: elector is None or elector.leading,
    )

    def passed(stats: PassStats, result: Plan) -> None:
        health.passed()
        if on_pass is not None:
            on_pass(stats, result)

    reconciler = Reconciler(
        kube, cache, settings, on_pass=passed, metrics=metrics, changes=lambda: trigger.kicks
    )

    async def synced() -> None:
        started = time.perf_counter()
        for informer in feeds:
            await informer.synced.wait()
        log.info(
            "informers_synced",
            nodes=len(cache.nodes),
            pods=len(cache.pods),
            priority_classes=len(cache.classes),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    # Before anything else: a port that cannot be served ends the process before it starts.
    runner = (
        await serve(metrics, health, host=settings.bind_address, port=settings.health_port)
        if settings.health_port
        else None
    )
    log.info(
        "scheduler_started",
        scheduler_name=settings.scheduler_name,
        namespace=settings.namespace or "(all)",
        node_selector=settings.node_selector.text or "(none)",
        interval_s=settings.interval,
        dry_run=settings.dry_run,
    )

    async def lead() -> None:
        # Background writes belong to the term that queued them: a deposed leader stops them with
        # its passes.
        async with anyio.create_task_group() as tg:
            tg.start_soon(reconciler.recorder.run)
            tg.start_soon(reconciler.reasons.run)
            await run_passes(
                reconciler.run_pass,
                trigger,
                interval=settings.interval,
                debounce=settings.debounce,
                synced=synced,
            )

    try:
        async with anyio.create_task_group() as tg:
            if handle_signals:
                tg.start_soon(_wait_for_signal, tg.cancel_scope)
            for informer in feeds:
                tg.start_soon(informer.run)
            if elector is None:
                metrics.leader.set(1)
                tg.start_soon(lead)
            else:
                tg.start_soon(elector.run, lead)
    finally:
        if runner is not None:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
    log.info("scheduler_stopped", passes=reconciler.passes)


def _own_namespace() -> str:
    """The namespace this pod runs in (from its service account), else "default"."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def elector_for(kube: Kube, settings: Settings, metrics: Metrics) -> Elector:
    """The Lease elector the settings ask for; this replica's identity is unique."""
    config = LeaseConfig(
        name=settings.lease_name,
        namespace=settings.lease_namespace or _own_namespace(),
        identity=f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
    )

    def changed(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        metrics.lease(config.name, leading=leading)

    changed(False)
    return Elector(kube, config, on_change=changed)


async def run(settings: Settings) -> None:
    """`custom-scheduler run`: connect with the settings' kubeconfig and schedule until stopped."""
    async with connect(settings.kubeconfig, settings.context, connections=settings.connections) as kube:
        await run_scheduler(kube, settings)


async def live_snapshot(kube: Kube, settings: Settings) -> Snapshot:
    """One list of each kind, converted: what a pass would see (read-only), as of the server's time."""
    cache = Cache()
    for informer in informers(kube, cache, settings, Trigger()):
        items, _ = await kube.list(informer.kind)
        informer.store.replace([informer.convert(obj) for obj in items])
    snapshot = cache.snapshot(now=0.0)
    # As a pass sees it: `now` on the API server's clock (its Date headers), which wrote the
    # timestamps it is compared with.
    return Snapshot(snapshot.nodes, snapshot.pods, snapshot.priority_classes, now=kube.server_time())


async def live_snapshot_of(settings: Settings) -> Snapshot:
    """Connect with the settings' kubeconfig and take one `live_snapshot`; nothing is written."""
    async with connect(settings.kubeconfig, settings.context) as kube:
        return await live_snapshot(kube, settings)
