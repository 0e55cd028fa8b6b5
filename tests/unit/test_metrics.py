"""The metrics mean what kube-scheduler's of the same name mean; ours are `custom_scheduler_*`.

`scheduler_schedule_attempts_total` counts a pod's attempt when its outcome changes or it is tried
again after a change in the cluster: an idle pass attempts nothing (kube-scheduler leaves such pods
in its unschedulable queue until an event moves them).
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from custom_scheduler.cache import Cache
from custom_scheduler.kube import Answer, Outcome
from custom_scheduler.metrics import Metrics
from custom_scheduler.model import Plan
from custom_scheduler.reconciler import Reconciler
from custom_scheduler.settings import Settings
from tests.unit.builders import bind, node, nominate, pod, unsched
from tests.unit.test_reconciler import FakeKube


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value (0 when absent)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def unschedulable(metrics: Metrics) -> float:
    return value(
        metrics, "scheduler_schedule_attempts_total", result="unschedulable", profile="custom-scheduler"
    )


@pytest.mark.asyncio(loop_scope="function")
async def test_idle_passes_attempt_nothing_and_a_change_retries_every_waiting_pod() -> None:
    # The numbers: 6 pods pending, four passes; it counted 6, 12, 18, 24.
    kube, metrics, kicks = FakeKube(), Metrics(), [1]
    cache = Cache()
    cache.nodes.replace([node("n1")])
    cache.pods.replace([pod("busy", on="n1", priority=5), *(pod(f"p{i}", t=i) for i in range(6))])
    r = Reconciler(kube, cache, Settings(), metrics=metrics, changes=lambda: kicks[0])  # type: ignore[arg-type]
    for _ in range(4):
        await r.run_pass()
    assert unschedulable(metrics) == 6
    assert value(metrics, "scheduler_preemption_attempts_total") == 6, "one preemption attempt per failure"
    kicks[0] += 1  # something relevant changed (a pod added elsewhere, a node cordoned): all are retried
    await r.run_pass()
    await r.run_pass()
    assert unschedulable(metrics) == 12
    assert value(metrics, "scheduler_pending_pods", queue="unschedulable") == 6
    assert value(metrics, "custom_scheduler_passes_total") == 6


def test_a_pod_whose_outcome_changes_is_attempted_again() -> None:
    metrics = Metrics()
    waiting = Plan(unschedulable=(unsched("a", "0/1 nodes are available."), unsched("b", "x")))
    metrics.observe_pass(waiting, seconds=0.01, gangs={}, changed=True)
    metrics.observe_pass(waiting, seconds=0.01, gangs={}, changed=False)
    assert unschedulable(metrics) == 2
    # b's reason changes; a is nominated (a failed attempt that preempted, as in kube-scheduler).
    moved = Plan(nominations=(nominate("a", "n1"),), unschedulable=(unsched("b", "y"),))
    metrics.observe_pass(moved, seconds=0.01, gangs={}, changed=False)
    metrics.observe_pass(moved, seconds=0.01, gangs={}, changed=False)
    assert unschedulable(metrics) == 4
    assert value(metrics, "custom_scheduler_nominated_pods") == 1
    # Placed: nothing left to attempt; its bind counts `scheduled` when it succeeds (Metrics.bound).
    metrics.observe_pass(Plan(binds=(bind("a", "n1"),)), seconds=0.01, gangs={}, changed=False)
    metrics.bound(0.0)
    assert unschedulable(metrics) == 4
    assert (
        value(metrics, "scheduler_schedule_attempts_total", result="scheduled", profile="custom-scheduler")
        == 1
    )


def test_pending_pods_has_kube_schedulers_queues() -> None:
    metrics = Metrics()
    plan = Plan(nominations=(nominate("a", "n1"),), unschedulable=(unsched("b", "x"),))
    metrics.observe_pass(plan, seconds=0.01, gangs={}, backoff=3, gated=["default/g"])
    queues = {
        q: value(metrics, "scheduler_pending_pods", queue=q)
        for q in ("active", "backoff", "unschedulable", "gated")
    }
    assert queues == {"active": 0, "backoff": 3, "unschedulable": 2, "gated": 1}


def test_a_nominated_gang_is_placed_once_when_bound() -> None:
    metrics = Metrics()
    gangs = {"default/g-0": "default/g", "default/g-1": "default/g"}
    nominated = Plan(nominations=(nominate("g-0", "n1"), nominate("g-1", "n2")))
    for _ in range(3):  # waiting for victims: the same nominations every pass
        metrics.observe_pass(nominated, seconds=0.01, gangs=gangs)
    metrics.observe_pass(Plan(binds=(bind("g-0", "n1"), bind("g-1", "n2"))), seconds=0.01, gangs=gangs)
    assert value(metrics, "custom_scheduler_gangs_placed_total") == 1


def test_the_exposition_has_process_metrics_our_prefix_and_no_created_series() -> None:
    metrics = Metrics(profile="team-x")
    metrics.bound(0.0)
    metrics.lease("custom-scheduler", leading=True)
    text = generate_latest(metrics.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    assert not [n for n in names if n.endswith("_created")]
    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    } <= names
    assert 'scheduler_schedule_attempts_total{profile="team-x",result="scheduled"} 1.0' in text
    assert 'leader_election_master_status{name="custom-scheduler"} 1.0' in text
    borrowed = {
        "scheduler_schedule_attempts_total",
        "scheduler_pending_pods",
        "scheduler_preemption_attempts_total",
        "scheduler_preemption_victims_bucket",
        "scheduler_preemption_victims_count",
        "scheduler_preemption_victims_sum",
    }
    spec = {"scheduler_reserved_nodes"}  # SPEC 6a names it; kube-scheduler has none of the name
    ours = {n for n in names if n.startswith("scheduler_")}
    assert ours <= borrowed | spec, "a name of kube-scheduler's only where it means the same"


@pytest.mark.asyncio(loop_scope="function")
async def test_a_failed_bind_is_an_error_attempt() -> None:
    kube = FakeKube({("bind", "a"): Answer(Outcome.FAILED, 500, "etcd")})
    metrics = Metrics()
    cache = Cache()
    cache.nodes.replace([node("n1")])
    cache.pods.replace([pod("a")])
    r = Reconciler(kube, cache, Settings(), metrics=metrics)  # type: ignore[arg-type]
    await r.run_pass()
    assert (
        value(metrics, "scheduler_schedule_attempts_total", result="error", profile="custom-scheduler") == 1
    )
