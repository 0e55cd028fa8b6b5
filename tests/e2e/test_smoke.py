"""The harness is real: KWOK makes nodes Ready, binds and Jobs and evictions work, RBAC says no."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client, config

from custom_scheduler import convert
from custom_scheduler.kube import Outcome, connect
from tests.e2e.cluster import Cluster, node_of, phase, service_account_kubeconfig
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import REPO, ControlPlane, bin_dir


async def test_a_created_node_becomes_ready(nodes: NodeFactory, cluster: Cluster) -> None:
    (name,), _ = await nodes(1)
    assert await cluster.node_ready(name)


async def test_a_pod_bound_through_pods_binding_becomes_running(
    nodes: NodeFactory, cluster: Cluster, namespace: str, control_plane: ControlPlane
) -> None:
    (node,), _ = await nodes(1)
    await cluster.create_pod(namespace, "p")
    # Straight through kubernetes_asyncio's generated client: a successful bind answers a
    # Status, which the client cannot parse as the V1Binding it expects, so read it raw.
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration, persist_config=False
    )
    async with client.ApiClient(configuration) as api:
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name="p"),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        # Typed as returning a V1Binding; unparsed, it is the aiohttp response itself.
        response = cast(
            aiohttp.ClientResponse,
            await client.CoreV1Api(api).create_namespaced_pod_binding(
                name="p", namespace=namespace, body=binding, _preload_content=False, _request_timeout=(5, 30)
            ),
        )
        answer = json.loads(await response.read())
    assert response.status == 201, answer
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    pod = await cluster.wait_for(lambda: _running(cluster, namespace, "p"), what="the bound pod to run")
    assert node_of(pod) == node
    # A second bind of a bound pod is a conflict, an expected outcome of the project's adapter.
    assert (
        await cluster.kube.bind(namespace, "p", node, convert.binding_body(namespace, "p", node))
    ).outcome is Outcome.CONFLICT


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def test_a_job_creates_its_pods(cluster: Cluster, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {
                    "schedulerName": "custom-scheduler",
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                }
            },
        },
    }
    await cluster.create_object(job, namespace)

    async def two_pods() -> bool:
        return len(await cluster.pods(namespace)) == 2

    await cluster.wait_for(two_pods, what="the Job's two pods")


async def test_eviction_removes_a_pod_and_a_budget_can_refuse_it(
    nodes: NodeFactory, cluster: Cluster, namespace: str
) -> None:
    names, _ = await nodes(2)
    for i, node in enumerate(names):
        await cluster.create_pod(namespace, f"v{i}", node=node, grace=0)
    await cluster.wait_for(lambda: _running(cluster, namespace, "v0"), what="v0 running")
    await cluster.wait_for(lambda: _running(cluster, namespace, "v1"), what="v1 running")
    assert (await cluster.kube.evict(namespace, "v0", convert.eviction_body(namespace, "v0"))).ok

    async def gone() -> bool:
        return await cluster.pod(namespace, "v0") is None

    await cluster.wait_for(gone, what="the evicted pod to go")

    # A budget that allows no disruption: the Eviction API answers 429.
    await cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/v1",
        {"metadata": {"labels": {"app": "guarded"}}},
        content_type="application/merge-patch+json",
    )
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
    }
    await cluster.create_object(pdb, namespace)

    async def budget_observed() -> bool:
        got = await cluster.get(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/guard")
        status = (got or {}).get("status") or {}
        return status.get("observedGeneration") == 1 and status.get("currentHealthy") == 1

    await cluster.wait_for(budget_observed, what="the disruption controller to observe the budget")
    refused = await cluster.kube.evict(namespace, "v1", convert.eviction_body(namespace, "v1"))
    assert refused.outcome is Outcome.TOO_MANY, refused
    assert "disruption budget" in refused.message, "the API server's own words come with the answer"
    assert await cluster.pod(namespace, "v1") is not None


async def test_a_service_account_without_rights_is_forbidden(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    await cluster.create_object(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}}, namespace
    )
    kubeconfig = await service_account_kubeconfig(
        cluster, control_plane, namespace, "nobody", tmp_path / "kubeconfig"
    )
    async with connect(str(kubeconfig), None) as kube:
        status, body = await kube.call("GET", "/api/v1/pods")
    assert status == 403, body


def test_the_binaries_know_their_release(control_plane: ControlPlane) -> None:
    pinned = re.search(r"k8s\.io/kubernetes (v\S+)", (REPO / "hack" / "controlplane" / "go.mod").read_text())
    assert pinned
    done = subprocess.run(
        [str(bin_dir() / "kubectl"), f"--kubeconfig={control_plane.kubeconfig}", "version", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # it cannot parse v0.0.0-master+$Format:%H$
    versions = json.loads(done.stdout)
    assert versions["clientVersion"]["gitVersion"] == versions["serverVersion"]["gitVersion"] == pinned[1]
    assert (versions["serverVersion"]["major"], versions["serverVersion"]["minor"]) == tuple(
        pinned[1].lstrip("v").split(".")[:2]
    )
