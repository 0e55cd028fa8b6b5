"""Our filters against kube-scheduler's own, on clusters nobody wrote into the tests (SPEC 2).

A real kube-scheduler (the pinned v1.36 binary, one profile of its own name) schedules random pods
(node selectors, required affinity of every operator, tolerations, requests) on random KWOK nodes
(pools, numeric labels, taints of every effect, allocatable, other pods' requests already there),
one pod at a time. For each, our `Filters` judge the same objects as the API server holds them:
where kube-scheduler binds must be a node ours call feasible, and where it says `0/N nodes are
available: ...`, ours must find no feasible node and count every filter's reason as it does (ours
name the taint, as SPEC 2's example does; kube-scheduler 1.36 says "had untolerated taint(s)").
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from custom_scheduler import convert
from custom_scheduler.planner.filters import Filters
from tests.e2e.cluster import Cluster, node_of, unique
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import ControlPlane, Process, bin_dir

REFERENCE = "reference-scheduler"  # kube-scheduler's profile: it schedules only pods that name it
GPU = "nvidia.com/gpu"
TAINTS = [
    {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
    {"key": "dedicated", "value": "batch", "effect": "NoExecute"},
    {"key": "spot", "value": "", "effect": "PreferNoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"},
]


@asynccontextmanager
async def kube_scheduler(plane: ControlPlane) -> AsyncIterator[None]:
    """kube-scheduler as its own process, with one profile named REFERENCE, until the block ends."""
    assert plane.workdir is not None
    config = plane.workdir / f"{unique('reference')}.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(plane.workdir / "scheduler.kubeconfig")},
                "leaderElection": {"leaderElect": False},
                "profiles": [{"schedulerName": REFERENCE}],
            }
        )
    )
    argv = [str(bin_dir() / "kube-scheduler"), f"--config={config}", "--secure-port=0", "-v=1"]
    process = Process("kube-scheduler", argv, plane.workdir / "reference-scheduler.log")
    process.start()
    try:
        yield
    finally:
        process.stop()


def _node_shape(rng: random.Random) -> dict[str, Any]:
    labels = {"pool": rng.choice("abc"), "zone": rng.choice(["z1", "z2"]), "gpus": str(rng.choice([0, 4, 8]))}
    if rng.random() < 0.3:
        labels["fast"] = "yes"
    allocatable = {"cpu": str(rng.choice([4, 8, 16])), "memory": f"{rng.choice([8, 32])}Gi", "pods": "110"}
    if labels["gpus"] != "0":
        allocatable[GPU] = labels["gpus"]
    taints = [t for t in TAINTS if rng.random() < 0.15]
    return {"labels": labels, "allocatable": allocatable, "taints": taints}


def _expression(rng: random.Random) -> dict[str, Any]:
    key = rng.choice(["pool", "zone", "gpus", "fast", "missing"])
    op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])
    if op in ("Exists", "DoesNotExist"):
        return {"key": key, "operator": op}
    if op in ("Gt", "Lt"):
        return {"key": "gpus", "operator": op, "values": [str(rng.choice([0, 2, 4, 6, 8]))]}
    values = {"pool": list("abc"), "zone": ["z1", "z2"], "gpus": ["0", "4", "8"]}.get(key, ["yes"])
    return {"key": key, "operator": op, "values": rng.sample(values, rng.randint(1, len(values)))}


def _pod_spec(rng: random.Random, label: tuple[str, str]) -> dict[str, Any]:
    """A random pod of REFERENCE, on this test's nodes only (its own label is in its selector)."""
    selector = {label[0]: label[1]}
    if rng.random() < 0.4:
        selector["pool"] = rng.choice("abc")
    spec: dict[str, Any] = {"schedulerName": REFERENCE, "nodeSelector": selector}
    if rng.random() < 0.5:
        terms = [
            {"matchExpressions": [_expression(rng) for _ in range(rng.randint(1, 2))]}
            for _ in range(rng.randint(1, 2))
        ]
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }
    tolerations = []
    if rng.random() < 0.3:
        tolerations.append({"key": "dedicated", "operator": "Exists"})
    if rng.random() < 0.2:
        tolerations.append({"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"})
    if rng.random() < 0.1:
        tolerations.append({"operator": "Exists"})
    if tolerations:
        spec["tolerations"] = tolerations
    requests: dict[str, str] = {}
    if rng.random() < 0.6:
        requests["cpu"] = rng.choice(["500m", "2", "6", "12"])
    if rng.random() < 0.4:
        requests["memory"] = rng.choice(["1Gi", "16Gi", "24Gi"])
    if rng.random() < 0.3:
        requests[GPU] = rng.choice(["1", "4", "8"])
    container: dict[str, Any] = {"name": "main", "image": "pause"}
    if requests:
        container["resources"] = {"requests": requests, "limits": requests}
    spec["containers"] = [container]
    return spec


async def _outcome(cluster: Cluster, namespace: str, name: str) -> tuple[str, str]:
    """(node it was bound to, "") or ("", kube-scheduler's FailedScheduling message)."""

    async def decided() -> tuple[str, str] | None:
        pod = await cluster.pod(namespace, name)
        if node_of(pod):
            return node_of(pod), ""
        failed = [e for e in await cluster.events(namespace, name) if e["reason"] == "FailedScheduling"]
        return ("", failed[-1]["message"]) if failed else None

    outcome: tuple[str, str] = await cluster.wait_for(decided, deadline=30, what=f"kube-scheduler on {name}")
    return outcome


def _their_counts(message: str) -> dict[str, int]:
    """`0/12 nodes are available: 1 Insufficient cpu, 2 node(s) had ... preemption: ...` as counts."""
    _, _, rest = message.partition(": ")
    # The list ends at the first full stop; kube-scheduler may go on ("no new claims to
    # deallocate, preemption: ..."). Resource names hold dots, never one followed by a space.
    reasons = re.split(r"\.(?:\s|$)", rest, maxsplit=1)[0]
    counts: dict[str, int] = {}
    for part in re.split(r", (?=\d+ )", reasons):
        number, _, reason = part.partition(" ")
        counts[reason] = int(number)
    return counts


async def _ours(cluster: Cluster, spec: dict[str, Any], skip: str) -> tuple[list[str], dict[str, int]]:
    """Where our filters let such a pod run (node names), and why not elsewhere (counts), judged on
    the cluster's nodes and pods as the API server holds them now (`skip`: the pod itself)."""
    nodes = [convert.node_from_api(n) for n in (await cluster.get("/api/v1/nodes"))["items"]]
    eligible = sorted((n for n in nodes if n.ready and not n.unschedulable), key=lambda n: n.name)
    used: dict[str, dict[str, int]] = {}
    on: dict[str, int] = {}
    for obj in (await cluster.get("/api/v1/pods"))["items"]:
        other = convert.other_pod_from_api(obj)
        if other.name == skip or not other.node_name or other.phase in ("Succeeded", "Failed"):
            continue
        on[other.node_name] = on.get(other.node_name, 0) + 1
        for resource, amount in other.constraints.requests:
            used.setdefault(other.node_name, {})[resource] = (
                used.get(other.node_name, {}).get(resource, 0) + amount
            )
    fit = Filters(eligible, used, on).fit(convert.pod_constraints(spec, "pod "))
    names = [n.name for i, n in enumerate(eligible) if fit.nodes >> i & 1]
    return names, {why: bits.bit_count() for why, bits in fit.unfit}


async def test_our_filters_judge_as_kube_schedulers_do(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    rng = random.Random(20261202)
    label: tuple[str, str] | None = None
    names: list[str] = []
    for _ in range(8):
        shape = _node_shape(rng)
        made, label = await nodes(
            1, labels=shape["labels"], taints=shape["taints"], allocatable=shape["allocatable"]
        )
        names += made
    assert label is not None
    # Other pods already on some nodes, taking part of their room (another scheduler's: bound directly).
    for i, node in enumerate(rng.sample(names, 3)):
        await cluster.create_pod(
            namespace, f"resident-{i}", scheduler="someone-else", node=node, requests={"cpu": "3"}
        )
    agreed = {"bound": 0, "unschedulable": 0}
    async with kube_scheduler(control_plane):
        for i in range(24):
            name, spec = f"probe-{i:02d}", _pod_spec(rng, label)
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
            await cluster.create(f"/api/v1/namespaces/{namespace}/pods", body)
            node, message = await _outcome(cluster, namespace, name)
            feasible, unfit = await _ours(cluster, spec, name)
            case = f"{name}: {json.dumps(spec)}"
            if node:
                assert node in feasible, (
                    f"kube-scheduler bound {case} to {node}; ours: only {feasible}, {unfit}"
                )
                agreed["bound"] += 1
            else:
                theirs = _their_counts(message)
                assert not feasible, f"kube-scheduler found no node for {case} ({message}); ours: {feasible}"
                # kube-scheduler 1.36 no longer names the taint ("had untolerated taint(s)"); ours
                # does, as SPEC 2 asks: compare the nodes kept off by any taint.
                ours = dict(unfit)
                tainted = sum(
                    ours.pop(r) for r in list(ours) if r.startswith("node(s) had untolerated taint {")
                )
                if tainted:
                    ours["node(s) had untolerated taint(s)"] = tainted
                # The same filters' reasons on both sides, with the same counts (kube-scheduler may
                # add its own, e.g. for a cordoned node, which ours leave out before filtering).
                filters = ("Insufficient ", "node(s) didn't match", "node(s) had untolerated")
                assert ours == {r: n for r, n in theirs.items() if r.startswith(filters)}, (
                    f"{case}: ours {unfit}, kube-scheduler's {message}"
                )
                agreed["unschedulable"] += 1
            await cluster.delete(f"/api/v1/namespaces/{namespace}/pods/{name}", {"gracePeriodSeconds": 0})
            await cluster.wait_for(functools.partial(_gone, cluster, namespace, name), what=f"{name} gone")
    # The random cases must exercise both answers, or the comparison proves little.
    assert agreed["bound"] >= 3 and agreed["unschedulable"] >= 3, agreed


async def _gone(cluster: Cluster, namespace: str, name: str) -> bool:
    return await cluster.pod(namespace, name) is None
