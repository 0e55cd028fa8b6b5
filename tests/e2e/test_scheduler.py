"""The scheduler on a real control plane: SPEC section 11, preemption in two phases, gangs, scope flags.

Each test has its own namespace and nodes, and runs its own scheduler restricted to them, so
tests do not see each other. Outcomes are awaited by polling the API with a deadline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from tests.e2e.cluster import Cluster, condition, node_of, phase
from tests.e2e.conftest import NodeFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


async def _apply(cluster: Cluster, namespace: str, *files: str) -> None:
    for name in files:
        await cluster.apply_file(EXAMPLES / name, namespace)


async def _job_pods(cluster: Cluster, namespace: str, job: str) -> list[dict[str, Any]]:
    return [p for p in await cluster.pods(namespace) if p["metadata"]["name"].startswith(f"{job}-")]


def _unschedulable_message(pod: dict[str, Any]) -> str:
    scheduled = condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "")
    return ""


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def test_demo_one_a_low_priority_gang_does_not_fit_and_says_why(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    await _apply(cluster, namespace, "priority-classes.yaml", "pod-highpri.yaml")
    async with cluster.scheduler(namespace, label) as passes:
        await cluster.wait_for(
            lambda: _running(cluster, namespace, "test-pod-high-pri"), what="the high pod to run"
        )
        await _apply(cluster, namespace, "job-two-lowpri.yaml")

        async def both_say_why() -> list[dict[str, Any]] | None:
            pods = await _job_pods(cluster, namespace, "job-two-lowpri")
            ok = len(pods) == 2 and all(_unschedulable_message(p) for p in pods)
            return pods if ok else None

        pods = await cluster.wait_for(both_say_why, what="both Job pods to say why they wait")
        await passes.more(2)
        pods = await _job_pods(cluster, namespace, "job-two-lowpri")
    expected = (
        f"gang {namespace}/job-two-lowpri needs 2 nodes, 1 can be had: "
        "1 node(s) hold a pod of equal or higher priority."
    )
    for pod in pods:
        assert node_of(pod) == ""
        assert _unschedulable_message(pod) == expected
        events = await cluster.events(namespace, pod["metadata"]["name"])
        failed = [e for e in events if e["reason"] == "FailedScheduling"]
        # (While the Job was creating its second pod, the first said the gang lacked quorum.)
        assert [e["message"] for e in failed].count(expected) == 1, "a reason is posted once, not every pass"
        assert failed[-1]["message"] == expected
        assert failed[-1]["type"] == "Warning"
    assert phase(await cluster.pod(namespace, "test-pod-high-pri")) == "Running"


async def test_demo_two_a_high_priority_gang_preempts_and_both_run(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(2)
    await _apply(cluster, namespace, "priority-classes.yaml", "pod-lowpri.yaml")
    async with cluster.scheduler(namespace, label):
        low = await cluster.wait_for(
            lambda: _running(cluster, namespace, "test-pod-low-pri"), what="the low pod to run"
        )
        await _apply(cluster, namespace, "job-two-highpri.yaml")

        async def both_run() -> list[dict[str, Any]] | None:
            pods = await _job_pods(cluster, namespace, "job-two-highpri")
            return pods if len(pods) == 2 and all(phase(p) == "Running" for p in pods) else None

        pods = await cluster.wait_for(both_run, deadline=60, what="both Job pods to run")
    assert sorted(node_of(p) for p in pods) == sorted(names)
    assert await cluster.pod(namespace, "test-pod-low-pri") is None, "the low pod is gone, not recreated"
    preempted = [e for e in await cluster.events(namespace, "test-pod-low-pri") if e["reason"] == "Preempted"]
    assert len(preempted) == 1
    assert preempted[0]["message"].startswith(f"Preempted by {namespace}/job-two-highpri-")
    assert preempted[0]["message"].endswith(f"on node {node_of(low)}")
    for pod in pods:
        scheduled = [
            e for e in await cluster.events(namespace, pod["metadata"]["name"]) if e["reason"] == "Scheduled"
        ]
        assert [e["message"] for e in scheduled] == [
            f"Successfully assigned {namespace}/{pod['metadata']['name']} to {node_of(pod)}"
        ]


async def test_a_single_pod_is_bound_soon_after_creation(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    (node,), label = await nodes(1)
    async with cluster.scheduler(namespace, label, interval=30) as passes:
        await passes.more(1)
        await cluster.create_pod(namespace, "solo")
        # The interval is 30 s: only the watch can bring the pod to a pass within the deadline.
        pod = await cluster.wait_for(
            lambda: _running(cluster, namespace, "solo"), deadline=10, what="the pod to run"
        )
    assert node_of(pod) == node


async def test_a_nominee_is_bound_only_after_its_victim_has_gone(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    (node,), label = await nodes(1)
    await _apply(cluster, namespace, "priority-classes.yaml")
    await cluster.create_pod(namespace, "victim", priority_class="low-priority", grace=3)
    async with cluster.scheduler(namespace, label):
        await cluster.wait_for(lambda: _running(cluster, namespace, "victim"), what="the victim to run")
        await cluster.create_pod(namespace, "preemptor", priority_class="high-priority")

        async def terminating() -> dict[str, Any] | None:
            victim = await cluster.pod(namespace, "victim")
            return victim if victim and victim["metadata"].get("deletionTimestamp") else None

        victim = await cluster.wait_for(terminating, what="the victim to be evicted")
        assert condition(victim, "DisruptionTarget").get("reason") == "PreemptionByScheduler"
        # While the victim takes its grace period to go, the preemptor waits, nominated.
        seen_nominated = False
        with anyio.fail_after(30):
            while await cluster.pod(namespace, "victim") is not None:
                preemptor = await cluster.pod(namespace, "preemptor")
                assert node_of(preemptor) == "", "bound while its victim was still on the node"
                seen_nominated |= (preemptor or {}).get("status", {}).get("nominatedNodeName") == node
                await anyio.sleep(0.05)
        assert seen_nominated
        pod = await cluster.wait_for(
            lambda: _running(cluster, namespace, "preemptor"), what="the preemptor to run"
        )
    assert node_of(pod) == node


async def test_a_gang_waits_for_quorum_and_says_so(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(3)
    async with cluster.scheduler(namespace, label):
        for i in range(2):
            await cluster.create_pod(namespace, f"train-{i}", gang="train", min_available=3)
        expected = f"gang {namespace}/train: 2 of 3 required members exist"

        async def both_say_so() -> bool:
            pods = [await cluster.pod(namespace, f"train-{i}") for i in range(2)]
            return all(_unschedulable_message(p or {}) == expected for p in pods)

        await cluster.wait_for(both_say_so, what="the gang's reason on both pods")
        await cluster.create_pod(namespace, "train-2", gang="train", min_available=3)

        async def all_run() -> bool:
            return all([await _running(cluster, namespace, f"train-{i}") for i in range(3)])

        await cluster.wait_for(all_run, what="the whole gang to run")
    assert len({node_of(await cluster.pod(namespace, f"train-{i}")) for i in range(3)}) == 3


async def test_pods_of_another_scheduler_are_untouched(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    await cluster.create_pod(namespace, "theirs", scheduler="someone-else")
    async with cluster.scheduler(namespace, label) as passes:
        await cluster.create_pod(namespace, "ours")
        await cluster.wait_for(lambda: _running(cluster, namespace, "ours"), what="our pod to run")
        await passes.more(2)
    theirs = await cluster.pod(namespace, "theirs")
    assert node_of(theirs) == ""
    assert condition(theirs, "PodScheduled") == {}
    assert await cluster.events(namespace, "theirs") == []


async def test_a_restarted_scheduler_converges_without_binding_twice(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(6)
    for i in range(6):
        await cluster.create_pod(namespace, f"p{i}")

    async def bound(count: int) -> bool:
        return sum(1 for p in await cluster.pods(namespace) if node_of(p)) >= count

    async with cluster.scheduler(namespace, label):
        await cluster.wait_for(lambda: bound(1), what="a first bind")
    for i in range(6, 10):
        await cluster.create_pod(namespace, f"p{i}")
    async with cluster.scheduler(namespace, label) as passes:
        await cluster.wait_for(lambda: bound(6), what="every node to be used")
        await passes.more(2)
    pods = await cluster.pods(namespace)
    per_node = Counter(node_of(p) for p in pods if node_of(p))
    assert sorted(per_node) == sorted(names) and set(per_node.values()) == {1}
    events = await cluster.events(namespace)
    scheduled = Counter(e["involvedObject"]["name"] for e in events if e["reason"] == "Scheduled")
    assert set(scheduled.values()) == {1}, scheduled
    waiting = [p["metadata"]["name"] for p in pods if not node_of(p)]
    assert len(waiting) == 4 and all(_unschedulable_message(p) for p in pods if not node_of(p))


async def test_namespace_flag_restricts_the_scheduler(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    other = f"{namespace}-other"
    await cluster.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    try:
        await cluster.create_pod(other, "elsewhere")
        async with cluster.scheduler(namespace, label) as passes:
            await cluster.create_pod(namespace, "here")
            await cluster.wait_for(
                lambda: _running(cluster, namespace, "here"), what="the pod in scope to run"
            )
            await passes.more(2)
        assert node_of(await cluster.pod(other, "elsewhere")) == ""
    finally:
        await cluster.delete(f"/api/v1/namespaces/{other}")


async def test_scheduler_name_flag_picks_the_pods(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    async with cluster.scheduler(namespace, label, scheduler_name="team-x") as passes:
        await cluster.create_pod(namespace, "mine", scheduler="team-x")
        await cluster.create_pod(namespace, "default-name")
        await cluster.wait_for(lambda: _running(cluster, namespace, "mine"), what="the team-x pod to run")
        await passes.more(2)
    assert node_of(await cluster.pod(namespace, "default-name")) == ""


async def test_node_selector_flag_limits_the_nodes(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(2)
    await cluster.request(
        "PATCH",
        f"/api/v1/nodes/{names[1]}",
        {"metadata": {"labels": {"pool": "chosen"}}},
        content_type="application/merge-patch+json",
    )
    selector = f"{label[0]}={label[1]},pool=chosen"
    async with cluster.scheduler(namespace, label, selector=selector):
        for i in range(2):
            await cluster.create_pod(namespace, f"p{i}")

        async def one_bound_one_waiting() -> bool:
            pods = [await cluster.pod(namespace, f"p{i}") for i in range(2)]
            return sorted(node_of(p) for p in pods) == ["", names[1]] and any(
                _unschedulable_message(p or {}) for p in pods
            )

        await cluster.wait_for(one_bound_one_waiting, what="one pod on the chosen node, the other waiting")


async def test_dry_run_writes_nothing(cluster: Cluster, namespace: str, nodes: NodeFactory) -> None:
    _, label = await nodes(1)
    await cluster.create_pod(namespace, "untouched")
    async with cluster.scheduler(namespace, label, dry_run=True) as passes:
        await passes.more(3)
    assert any(p.binds for p in passes.plans), "the dry run planned a bind"
    pod = await cluster.pod(namespace, "untouched")
    assert node_of(pod) == ""
    assert condition(pod, "PodScheduled") == {}
    assert await cluster.events(namespace) == []


async def test_a_gated_pod_is_left_alone_until_its_gates_are_removed(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    """SPEC 2 (v2), issue 11.1: a pod with schedulingGates takes no node, causes no eviction and gets
    no reason from us; the API server already says `SchedulingGated`. Once its gates go, it is an
    ordinary pending pod."""
    (node,), label = await nodes(1)
    await _apply(cluster, namespace, "priority-classes.yaml")
    await cluster.create_pod(namespace, "gated", priority_class="high-priority", gates=["example.com/quota"])
    await cluster.create_pod(namespace, "open", priority_class="low-priority")
    async with cluster.scheduler(namespace, label) as passes:
        # The gated pod is older and of higher priority: planned as schedulable, it would take the
        # node (its bind refused every pass) and `open` would never run.
        running = await cluster.wait_for(lambda: _running(cluster, namespace, "open"), what="`open` to run")
        assert node_of(running) == node
        await passes.more(3)
        gated = await cluster.pod(namespace, "gated")
        assert node_of(gated) == ""
        assert condition(gated, "PodScheduled").get("reason") == "SchedulingGated", "we write no reason"
        assert not (gated.get("status") or {}).get("nominatedNodeName")
        assert await cluster.events(namespace, "gated") == []
        opened = await cluster.pod(namespace, "open")
        assert not opened["metadata"].get("deletionTimestamp"), "a gated pod evicted `open`"
        assert condition(opened, "DisruptionTarget") == {}

        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/gated",
            {"spec": {"schedulingGates": None}},
            content_type="application/merge-patch+json",
        )
        pod = await cluster.wait_for(
            lambda: _running(cluster, namespace, "gated"),
            deadline=60,
            what="the ungated pod to preempt and run",
        )
    assert node_of(pod) == node
    assert await cluster.pod(namespace, "open") is None, "`open` was preempted once the gates were gone"
