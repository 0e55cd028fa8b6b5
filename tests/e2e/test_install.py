"""The install of the README, on the real control plane: `kubectl apply --server-side -k manifests/`
into a namespace of our own, then the scheduler running as its ServiceAccount.

With exactly the RBAC of `manifests/rbac.yaml` it binds, preempts, nominates, records events and
elects a leader without a single 403; without any one of its rules, it fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import pytest_asyncio
import yaml

from custom_scheduler.kube import ApiError, connect
from custom_scheduler.service import run_scheduler
from custom_scheduler.settings import Settings, parse_selector
from tests.e2e.cluster import Cluster, condition, node_of, phase, service_account_kubeconfig, unique
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import REPO, ControlPlane, bin_dir

ROLES = {d["kind"]: d for d in yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text())}
RULES = [(kind, i) for kind in ("ClusterRole", "Role") for i in range(len(ROLES[kind]["rules"]))]


def _rule_id(rule: tuple[str, int]) -> str:
    r = ROLES[rule[0]]["rules"][rule[1]]
    return f"{rule[0]}:{r['resources'][0]}:{'+'.join(r['verbs'])}"


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    """Run the control plane's kubectl as the admin."""
    done = subprocess.run(
        [str(bin_dir() / "kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def install(plane: ControlPlane, namespace: str, tmp: Path) -> None:
    """The README's install, into `namespace`: set it in a copy of manifests/, apply server-side."""
    copy = tmp / "manifests"
    shutil.copytree(REPO / "manifests", copy, ignore=shutil.ignore_patterns("examples"))
    text = (
        (copy / "kustomization.yaml")
        .read_text()
        .replace("namespace: custom-scheduler", f"namespace: {namespace}")
    )
    (copy / "kustomization.yaml").write_text(text)
    kubectl(plane, "apply", "--server-side", "-k", str(copy))


@pytest_asyncio.fixture
async def installed(
    control_plane: ControlPlane, cluster: Cluster, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """The manifests applied into a fresh namespace; yields it and the ServiceAccount's kubeconfig."""
    namespace = unique("sched")
    await anyio.to_thread.run_sync(install, control_plane, namespace, tmp_path)
    yield (
        namespace,
        await service_account_kubeconfig(
            cluster, control_plane, namespace, "custom-scheduler", tmp_path / "sa.kubeconfig"
        ),
    )
    await anyio.to_thread.run_sync(
        lambda: kubectl(
            control_plane,
            "delete",
            "clusterrolebinding,clusterrole",
            "custom-scheduler",
            "--ignore-not-found",
        )
    )
    await cluster.delete(f"/api/v1/namespaces/{namespace}")


async def scenario(
    cluster: Cluster, workload: str, label: tuple[str, str], kubeconfig: Path, lease_ns: str
) -> None:
    """Run the scheduler as the ServiceAccount through bind, preemption, nomination, reasons."""
    settings = Settings(
        node_selector=parse_selector(f"{label[0]}={label[1]}"),
        interval=1.0,
        leader_elect=True,
        lease_namespace=lease_ns,
        retry_period=0.5,
    )
    await cluster.create_object(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "low-priority"},
            "value": 10,
        },
        workload,
    )
    await cluster.create_object(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "high-priority"},
            "value": 1000000,
        },
        workload,
    )
    async with connect(str(kubeconfig), None) as kube, anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_scheduler(kube, settings, handle_signals=False))
        await cluster.create_pod(workload, "low", priority_class="low-priority", grace=1)
        await cluster.wait_for(lambda: _running(cluster, workload, "low"), what="low to run")
        await cluster.create_pod(workload, "high", priority_class="high-priority")
        await cluster.create_pod(workload, "lonely", gang="g", min_available=2)

        async def placed() -> bool:
            high = await cluster.pod(workload, "high")
            lonely = await cluster.pod(workload, "lonely")
            return (
                phase(high) == "Running"
                and condition(lonely, "PodScheduled").get("reason") == "Unschedulable"
            )

        await cluster.wait_for(
            placed, deadline=60, what="high to run after preempting low; lonely to say why"
        )
        tg.cancel_scope.cancel()


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def test_the_service_account_can_do_everything_the_scheduler_does(
    installed: tuple[str, Path], cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    sched_ns, kubeconfig = installed
    (node,), label = await nodes(1)
    await scenario(cluster, namespace, label, kubeconfig, sched_ns)
    assert node_of(await cluster.pod(namespace, "high")) == node
    reasons = {e["reason"] for e in await cluster.events(namespace)}
    assert {"Scheduled", "Preempted", "FailedScheduling"} <= reasons
    lease = await cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/{sched_ns}/leases/custom-scheduler")
    assert lease["spec"]["holderIdentity"] == ""  # released on a clean stop
    deployment = await cluster.get(f"/apis/apps/v1/namespaces/{sched_ns}/deployments/custom-scheduler")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "custom-scheduler"


async def test_the_replicas_spread_and_a_drain_takes_one_at_a_time(
    installed: tuple[str, Path], cluster: Cluster, nodes: NodeFactory
) -> None:
    sched_ns, _ = installed
    deployment = await cluster.get(f"/apis/apps/v1/namespaces/{sched_ns}/deployments/custom-scheduler")
    template = deployment["spec"]["template"]
    terms = template["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [t["podAffinityTerm"]["topologyKey"] for t in terms] == ["kubernetes.io/hostname"]
    assert (
        terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"].items()
        <= template["metadata"]["labels"].items()
    )

    # No kube-scheduler runs here: place the Deployment's two pods on two nodes by hand.
    (first, second), _ = await nodes(2)

    async def replicas() -> list[dict[str, Any]] | None:
        pods = [p for p in await cluster.pods(sched_ns) if not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == 2 else None

    pods = await cluster.wait_for(replicas, what="the Deployment's two pods")
    names = [p["metadata"]["name"] for p in pods]
    for name, node in zip(names, (first, second), strict=True):
        status, body = await cluster.request(
            "POST",
            f"/api/v1/namespaces/{sched_ns}/pods/{name}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"kind": "Node", "name": node},
            },
        )
        assert status == 201, body
    budget_path = f"/apis/policy/v1/namespaces/{sched_ns}/poddisruptionbudgets/custom-scheduler"

    async def both_healthy() -> dict[str, Any] | None:
        budget = await cluster.get(budget_path) or {}
        status = budget.get("status") or {}
        return budget if (status.get("expectedPods"), status.get("currentHealthy")) == (2, 2) else None

    budget = await cluster.wait_for(both_healthy, deadline=60, what="the budget to count both replicas Ready")
    assert budget["spec"]["minAvailable"] == 1
    evictions = []
    for name in names:
        status, _ = await cluster.request(
            "POST",
            f"/api/v1/namespaces/{sched_ns}/pods/{name}/eviction",
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": sched_ns},
            },
        )
        evictions.append(status)
    assert evictions == [201, 429]  # the second waits until a replacement runs


@pytest.mark.parametrize("dropped", RULES, ids=[_rule_id(r) for r in RULES])
async def test_every_rule_is_needed(
    dropped: tuple[str, int],
    installed: tuple[str, Path],
    control_plane: ControlPlane,
    cluster: Cluster,
    namespace: str,
    nodes: NodeFactory,
) -> None:
    sched_ns, kubeconfig = installed
    kind, index = dropped
    role = dict(ROLES[kind])
    role["rules"] = [r for i, r in enumerate(role["rules"]) if i != index]
    role["metadata"] = {**role["metadata"], "namespace": sched_ns} if kind == "Role" else role["metadata"]
    await anyio.to_thread.run_sync(
        lambda: kubectl(
            control_plane, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(role)
        )
    )
    _, label = await nodes(1)
    with pytest.raises(BaseExceptionGroup) as failure:
        with anyio.fail_after(60):
            await scenario(cluster, namespace, label, kubeconfig, sched_ns)
    errors = [e for e in _leaves(failure.value) if isinstance(e, ApiError)]
    assert errors and all(e.status == 403 for e in errors), failure.value


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    return [error]


async def test_metrics_have_a_service_scrape_annotations_and_an_optional_service_monitor(
    installed: tuple[str, Path], cluster: Cluster, tmp_path: Path
) -> None:
    sched_ns, _ = installed
    service = await cluster.get(f"/api/v1/namespaces/{sched_ns}/services/custom-scheduler-metrics")
    deployment = await cluster.get(f"/apis/apps/v1/namespaces/{sched_ns}/deployments/custom-scheduler")
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    (served,) = [p for p in container["ports"] if p["name"] == "http-metrics"]
    assert f"--health-port={served['containerPort']}" in container["args"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http-metrics", 10251, "http-metrics")
    annotations = template["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(served["containerPort"]),
        "prometheus.io/path": "/metrics",
    }
    # The ServiceMonitor is a component, off by default (the cluster above has no Prometheus
    # Operator CRD, and the install applied); enabled, it selects this Service and its port.
    copy = tmp_path / "with-monitoring"
    shutil.copytree(REPO / "manifests", copy, ignore=shutil.ignore_patterns("examples"))
    kustomization = (copy / "kustomization.yaml").read_text()
    assert "# components:\n#   - monitoring\n" in kustomization
    (copy / "kustomization.yaml").write_text(
        kustomization.replace("# components:\n#   - monitoring\n", "components:\n  - monitoring\n")
    )
    rendered = await anyio.run_process([str(bin_dir() / "kubectl"), "kustomize", str(copy)])
    docs = list(yaml.safe_load_all(rendered.stdout))
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (rendered_service,) = [d for d in docs if d["kind"] == "Service"]
    assert monitor["metadata"]["namespace"] == rendered_service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= rendered_service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
