"""Where a pod may run, on a real control plane (SPEC 2, v2): taints, a GPU pool, a request that
fits one node, another scheduler's pod taking room, and a preemption in the pool the preemptor needs.

Each test has its own namespace and nodes (KWOK nodes carry any labels, taints and allocatable).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tests.e2e.cluster import Cluster, condition, node_of, phase
from tests.e2e.conftest import NodeFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
GPU = "nvidia.com/gpu"
CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def _says(cluster: Cluster, namespace: str, name: str, text: str) -> bool:
    scheduled = condition(await cluster.pod(namespace, name), "PodScheduled")
    return scheduled.get("status") == "False" and text in str(scheduled.get("message") or "")


async def test_a_tainted_control_plane_node_never_gets_our_pods(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    """SPEC 2: `node-role.kubernetes.io/control-plane:NoSchedule` keeps our pods off, as it keeps
    kube-scheduler's; the reason says so in kube-scheduler's words; a toleration lets a pod on."""
    (control,), label = await nodes(1, taints=[CONTROL_PLANE])
    async with cluster.scheduler(namespace, label) as passes:
        await cluster.create_pod(namespace, "plain")
        expected = (
            "0/1 nodes are available: 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }."
        )
        await cluster.wait_for(
            functools.partial(_says, cluster, namespace, "plain", expected), what="the taint's reason"
        )
        await passes.more(2)
        assert node_of(await cluster.pod(namespace, "plain")) == ""
        await cluster.create_pod(
            namespace, "tolerant", spec={"tolerations": [{"key": CONTROL_PLANE["key"], "operator": "Exists"}]}
        )
        pod = await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "tolerant"), what="the tolerant pod to run"
        )
    assert node_of(pod) == control
    assert node_of(await cluster.pod(namespace, "plain")) == ""


async def test_a_gpu_pool_and_a_request_that_fits_one_node(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    """SPEC 2: a node selector picks the pool; a request of 8 GPUs goes to the one node with 8,
    not to the first node by name."""
    cpu, label = await nodes(2, labels={"pool": "cpu"}, allocatable={"cpu": "32", "pods": "110"})
    small, _ = await nodes(1, labels={"pool": "gpu"}, allocatable={"cpu": "32", GPU: "4", "pods": "110"})
    big, _ = await nodes(1, labels={"pool": "gpu"}, allocatable={"cpu": "32", GPU: "8", "pods": "110"})
    async with cluster.scheduler(namespace, label):
        await cluster.create_pod(
            namespace, "train", requests={GPU: "8"}, spec={"nodeSelector": {"pool": "gpu"}}
        )
        await cluster.create_pod(namespace, "web", spec={"nodeSelector": {"pool": "cpu"}})
        train = await cluster.wait_for(functools.partial(_running, cluster, namespace, "train"), what="train")
        web = await cluster.wait_for(functools.partial(_running, cluster, namespace, "web"), what="web")
        await cluster.create_pod(
            namespace, "train-2", requests={GPU: "8"}, spec={"nodeSelector": {"pool": "gpu"}}
        )
        expected = (
            "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
            f"1 Insufficient {GPU}, 1 node(s) hold a pod of equal or higher priority."
        )
        await cluster.wait_for(
            functools.partial(_says, cluster, namespace, "train-2", expected), what="train-2's reason"
        )
    assert node_of(train) == big[0], f"not {small[0]}, the first GPU node by name, which has 4"
    assert node_of(web) in cpu


async def test_another_schedulers_pod_takes_room_our_pod_does_not_get(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    """SPEC 2: a node's allocatable less what other schedulers' pods on it request (a DaemonSet's,
    say): ours go where the request still fits. Those pods reach the scheduler through a watch of
    their own."""
    names, label = await nodes(2, allocatable={"cpu": "4", "pods": "110"})
    async with cluster.scheduler(namespace, label) as passes:
        await passes.more(1)
        await cluster.create_pod(
            namespace, "daemon", scheduler="someone-else", node=names[0], requests={"cpu": "3"}
        )
        await cluster.wait_for(functools.partial(_running, cluster, namespace, "daemon"), what="the daemon")
        await cluster.create_pod(namespace, "a", requests={"cpu": "2"})
        pod = await cluster.wait_for(functools.partial(_running, cluster, namespace, "a"), what="our pod")
    assert node_of(pod) == names[1], "the first node by name has 1 cpu left"


async def test_a_preemption_picks_the_pool_the_preemptor_needs(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    """SPEC 6 (v2): the lowest-priority victim runs in the wrong pool; the preemptor evicts in the
    pool it can run in, and nobody else."""
    (other,), label = await nodes(1, labels={"pool": "cpu"})
    (gpu,), _ = await nodes(1, labels={"pool": "gpu"})
    await cluster.apply_file(EXAMPLES / "priority-classes.yaml", namespace)
    async with cluster.scheduler(namespace, label):
        await cluster.create_pod(
            namespace, "lowest", priority_class="low-priority", spec={"nodeSelector": {"pool": "cpu"}}
        )
        await cluster.create_pod(
            namespace, "low", priority_class="low-priority", spec={"nodeSelector": {"pool": "gpu"}}
        )
        for name in ("lowest", "low"):
            await cluster.wait_for(functools.partial(_running, cluster, namespace, name), what=name)
        await cluster.create_pod(
            namespace, "hi", priority_class="high-priority", spec={"nodeSelector": {"pool": "gpu"}}
        )
        pod = await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "hi"), deadline=60, what="the preemptor to run"
        )
    assert node_of(pod) == gpu
    assert await cluster.pod(namespace, "low") is None
    lowest = await cluster.pod(namespace, "lowest")
    assert phase(lowest) == "Running" and not lowest["metadata"].get("deletionTimestamp")
    assert node_of(lowest) == other
