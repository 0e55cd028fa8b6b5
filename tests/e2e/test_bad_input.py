"""Bad input on the real control plane: each gives a clear event or log line, never a crash or a stall."""

from __future__ import annotations

import functools
from typing import Any

import anyio

from custom_scheduler.kube import connect
from custom_scheduler.model import ANNOTATION_PREFIX, GROUP_NAME, MIN_AVAILABLE
from tests.e2e.cluster import Cluster, condition, node_of, own_control_plane, phase, unique
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import ControlPlane


def _reason(pod: dict[str, Any] | None) -> str:
    scheduled = condition(pod, "PodScheduled")
    return str(scheduled.get("message") or "") if scheduled.get("status") == "False" else ""


async def _says(cluster: Cluster, namespace: str, name: str, text: str) -> bool:
    return text in _reason(await cluster.pod(namespace, name))


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def _annotated(cluster: Cluster, namespace: str, name: str, annotations: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"schedulerName": "custom-scheduler", "containers": [{"name": "main", "image": "pause"}]},
    }
    await cluster.create(f"/api/v1/namespaces/{namespace}/pods", body)


async def test_every_invalid_annotation_is_that_pods_error_only(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    bad = {
        "not-a-number": ({GROUP_NAME: "g", MIN_AVAILABLE: "abc"}, f'{MIN_AVAILABLE}="abc" is invalid'),
        "zero": ({GROUP_NAME: "g", MIN_AVAILABLE: "0"}, f'{MIN_AVAILABLE}="0" is invalid'),
        "negative": ({GROUP_NAME: "g", MIN_AVAILABLE: "-1"}, f'{MIN_AVAILABLE}="-1" is invalid'),
        "no-group": ({MIN_AVAILABLE: "2"}, f'{MIN_AVAILABLE}="2" is invalid without {GROUP_NAME}'),
        "empty-group": ({GROUP_NAME: ""}, f'{GROUP_NAME}="" is invalid: it must not be empty'),
        "arabic-digit": ({GROUP_NAME: "g", MIN_AVAILABLE: "\u0663"}, "is invalid"),
        "huge-value": (
            {GROUP_NAME: "g", MIN_AVAILABLE: "9" * 5000},
            f'{MIN_AVAILABLE}="{"9" * 64}..." is invalid',
        ),
        # Issue 11.5: a group name is at most as long as a label value; a huge one costs nothing.
        "long-group": (
            {GROUP_NAME: "g" * 200 * 1024},
            f'{GROUP_NAME}="{"g" * 64}..." is invalid: it must have at most 63 characters',
        ),
        # Issue 15.2: a typo must not silently turn a gang into separate pods.
        "typo-group": (
            {f"{ANNOTATION_PREFIX}groupname": "train", MIN_AVAILABLE: "2"},
            f'{ANNOTATION_PREFIX}groupname="train" is unknown: did you mean {GROUP_NAME}?',
        ),
        "typo-min": (
            {GROUP_NAME: "train", f"{ANNOTATION_PREFIX}min-avaliable": "2"},
            f'{ANNOTATION_PREFIX}min-avaliable="2" is unknown: did you mean {MIN_AVAILABLE}?',
        ),
    }
    for name, (given, _) in bad.items():
        await _annotated(cluster, namespace, name, given)
    async with cluster.scheduler(namespace, label):
        await cluster.create_pod(namespace, "fine")
        await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "fine"), what="a valid pod to run"
        )
        for name, (_, text) in bad.items():
            await cluster.wait_for(
                functools.partial(_says, cluster, namespace, name, text), what=f"{name}'s error"
            )
    for name in bad:
        pod = await cluster.pod(namespace, name)
        assert node_of(pod) == ""
        warnings = [e for e in await cluster.events(namespace, name) if e["type"] == "Warning"]
        assert len(warnings) == 1 and warnings[0]["reason"] == "FailedScheduling"
        assert len(warnings[0]["message"]) <= 1024


async def test_odd_but_valid_annotations_just_work(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    odd_group = "Gruppe ä/😀 " + "x" * 52  # 63 characters: the longest a group name may be
    for i in range(2):
        await _annotated(cluster, namespace, f"odd-{i}", {GROUP_NAME: odd_group, MIN_AVAILABLE: " 2 "})
    async with cluster.scheduler(namespace, label):
        for i in range(2):
            await cluster.wait_for(
                functools.partial(_running, cluster, namespace, f"odd-{i}"), what=f"odd-{i}"
            )


async def test_an_impossible_min_available_waits_and_says_so(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(1)
    await cluster.create_pod(namespace, "hopeful", gang="huge", min_available="100000")
    async with cluster.scheduler(namespace, label):
        expected = f"gang {namespace}/huge: 1 of 100000 required members exist"
        await cluster.wait_for(
            functools.partial(_says, cluster, namespace, "hopeful", expected), what="the reason"
        )
        await cluster.create_pod(namespace, "other")
        await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "other"), what="other pods unaffected"
        )


async def test_a_gang_of_two_thousand_does_not_stall_anyone(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    limiter = anyio.CapacityLimiter(50)

    async def member(i: int) -> None:
        async with limiter:
            await cluster.create_pod(namespace, f"big-{i:04d}", gang="big", min_available=2000)

    async with anyio.create_task_group() as tg:
        for i in range(2000):
            tg.start_soon(member, i)
    async with cluster.scheduler(namespace, label):
        expected = f"gang {namespace}/big needs 2000 nodes, 2 can be had"
        await cluster.wait_for(
            functools.partial(_says, cluster, namespace, "big-1999", expected),
            deadline=120,
            what="the gang's reason",
        )
        await cluster.create_pod(namespace, "small")
        await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "small"),
            deadline=30,
            what="a small pod beside the big gang",
        )


async def test_a_namespace_deleted_mid_pass_is_no_crash(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(1)
    doomed = unique("doomed")
    await cluster.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": doomed}}
    )
    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(
                functools.partial(cluster.create_pod, doomed, f"p{i:03d}", gang="g", min_available=1000)
            )
    # All namespaces: the doomed one's 100 pods are planned (and told why they wait) as it goes.
    async with cluster.scheduler(None, label) as passes:
        await passes.more(1)
        await cluster.delete(f"/api/v1/namespaces/{doomed}")
        await passes.more(3)
        await cluster.create_pod(namespace, "after")
        await cluster.wait_for(
            functools.partial(_running, cluster, namespace, "after"), what="scheduling to go on"
        )


async def test_an_unknown_priority_class_with_admission_off(control_plane: ControlPlane) -> None:
    async with (
        own_control_plane("--disable-admission-plugins=Priority") as plane,
        connect(str(plane.kubeconfig), None) as kube,
    ):
        cluster = Cluster(kube)
        await cluster.create_nodes(1, labels={"plain": "yes"}, prefix="plain")
        await cluster.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}}
        )
        await cluster.create_pod("p", "classless", priority_class="no-such-class")
        pod = await cluster.pod("p", "classless")
        assert "priority" not in pod["spec"], "admission is off: nobody resolved the class"
        async with cluster.scheduler("p", ("plain", "yes")):
            # Unknown class, no global default: priority 0; it is simply scheduled.
            await cluster.wait_for(
                functools.partial(_running, cluster, "p", "classless"), what="the pod to run"
            )
