"""Test helpers on a real API server: create nodes and pods, read them back, wait with a deadline.

Waiting is always polling the API until a condition holds or a deadline passes (never a bare
sleep standing in for an outcome); a timeout fails with what was last seen.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import yaml

from custom_scheduler.kube import Kube
from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE, Plan
from custom_scheduler.reconciler import PassStats
from custom_scheduler.service import run_scheduler
from custom_scheduler.settings import Settings, parse_selector
from tests.harness.controlplane import ControlPlane, kwok_node

T = TypeVar("T")
PAUSE = "registry.k8s.io/pause:3.10"


class ClusterError(AssertionError):
    """A request the test expected to succeed did not."""


_PATHS = {
    ("v1", "Pod"): "/api/v1/namespaces/{ns}/pods",
    ("v1", "Node"): "/api/v1/nodes",
    ("v1", "Namespace"): "/api/v1/namespaces",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts",
    ("batch/v1", "Job"): "/apis/batch/v1/namespaces/{ns}/jobs",
    ("scheduling.k8s.io/v1", "PriorityClass"): "/apis/scheduling.k8s.io/v1/priorityclasses",
    ("policy/v1", "PodDisruptionBudget"): "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


class Cluster:
    """A thin, test-friendly view of the API server."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def request(self, method: str, path: str, body: object = None, **kw: Any) -> tuple[int, Any]:
        """Any request: (status, JSON)."""
        return await self.kube.call(method, path, body, **kw)

    async def create(self, path: str, body: dict[str, Any], *, ok: tuple[int, ...] = (200, 201)) -> Any:
        """POST and expect success (or one of `ok`)."""
        status, data = await self.request("POST", path, body)
        if status not in ok:
            raise ClusterError(f"POST {path} answered {status}: {data}")
        return data

    async def get(self, path: str) -> Any:
        """GET, or None when it is not there."""
        status, data = await self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise ClusterError(f"GET {path} answered {status}: {data}")
        return data

    async def delete(self, path: str, body: object = None) -> int:
        """DELETE; the status (404 is fine)."""
        status, _ = await self.request("DELETE", path, body)
        return status

    async def apply_file(self, path: Path, namespace: str) -> list[dict[str, Any]]:
        """Create every object of a manifest file (as `kubectl create -f` would)."""
        created = []
        for doc in yaml.safe_load_all(await anyio.Path(path).read_text()):
            if doc:
                created.append(await self.create_object(doc, namespace))
        return created

    async def create_object(self, obj: dict[str, Any], namespace: str) -> Any:
        """Create one object of a kind the tests use, in `namespace` when it is namespaced."""
        path = _PATHS[(obj["apiVersion"], obj["kind"])].format(ns=namespace)
        if "{ns}" in _PATHS[(obj["apiVersion"], obj["kind"])]:
            obj.setdefault("metadata", {})["namespace"] = namespace
        return await self.create(
            path, obj, ok=(200, 201, 409) if obj["kind"] == "PriorityClass" else (200, 201)
        )

    async def create_priority_classes(self, values: dict[str, int]) -> None:
        """Priority classes by name and value (cluster-wide; one that exists is kept)."""
        for name, value in values.items():
            klass = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": value}
            await self.create_object({**klass, "metadata": {"name": name}}, "")

    # -- nodes ------------------------------------------------------------------------------

    async def create_nodes(
        self,
        count: int,
        *,
        labels: dict[str, str],
        prefix: str = "node",
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
    ) -> list[str]:
        """`count` KWOK nodes with these labels (and taints, allocatable), Ready before this returns."""
        names = [f"{prefix}-{i}" for i in range(count)]
        body = functools.partial(kwok_node, labels=labels, taints=taints or (), allocatable=allocatable)
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(self.create, "/api/v1/nodes", body(name))
        for name in names:
            await self.wait_for(
                functools.partial(self.node_usable, name),
                what=f"node {name} Ready, its not-ready taint lifted",
            )
        return names

    async def node_usable(self, name: str) -> bool:
        """Ready, and without the not-ready taint the API server puts on every new node: the node
        lifecycle controller lifts it a moment after Ready, and until then no pod may go there."""
        node = await self.get(f"/api/v1/nodes/{quote(name)}")
        taints = ((node or {}).get("spec") or {}).get("taints") or []
        return await self.node_ready(name) and not any(
            t.get("key") == "node.kubernetes.io/not-ready" for t in taints
        )

    async def node_ready(self, name: str) -> bool:
        """Whether the node reports Ready=True."""
        node = await self.get(f"/api/v1/nodes/{quote(name)}")
        conditions = ((node or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    # -- pods -------------------------------------------------------------------------------

    async def create_pod(
        self,
        namespace: str,
        name: str,
        *,
        priority_class: str | None = None,
        gang: str | None = None,
        min_available: int | str | None = None,
        scheduler: str = "custom-scheduler",
        grace: int | None = None,
        node: str | None = None,
        finalizers: list[str] | None = None,
        gates: list[str] | None = None,
        requests: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Any:
        """A pod (pause container) with our scheduler unless told otherwise; `gates` names its
        scheduling gates, `requests` its container's requests (and limits), `spec` adds to its spec."""
        annotations = {}
        if gang is not None:
            annotations[GROUP_NAME] = gang
        if min_available is not None:
            annotations[MIN_AVAILABLE] = str(min_available)
        container: dict[str, Any] = {"name": "main", "image": PAUSE}
        if requests:
            container["resources"] = {"requests": requests, "limits": requests}
        extra, spec = spec or {}, {"schedulerName": scheduler, "containers": [container]}
        spec.update(extra)
        if priority_class:
            spec["priorityClassName"] = priority_class
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = grace
        if node is not None:
            spec["nodeName"] = node
        if gates:
            spec["schedulingGates"] = [{"name": gate} for gate in gates]
        meta: dict[str, Any] = {"name": name, "annotations": annotations, "labels": labels or {}}
        if finalizers:
            meta["finalizers"] = finalizers
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        return await self.create(f"/api/v1/namespaces/{namespace}/pods", body)

    async def pod(self, namespace: str, name: str) -> Any:
        """The pod, or None."""
        return await self.get(f"/api/v1/namespaces/{namespace}/pods/{quote(name)}")

    async def pods(self, namespace: str) -> list[dict[str, Any]]:
        """All pods of a namespace."""
        return list((await self.get(f"/api/v1/namespaces/{namespace}/pods") or {}).get("items") or [])

    async def events(self, namespace: str, pod: str | None = None) -> list[dict[str, Any]]:
        """Events of a namespace, or of one pod, oldest first."""
        items = (await self.get(f"/api/v1/namespaces/{namespace}/events") or {}).get("items") or []
        if pod is not None:
            items = [e for e in items if (e.get("involvedObject") or {}).get("name") == pod]
        # Timestamps are to the second; within one, the order of writing is etcd's revision (this
        # control plane has one etcd, so resourceVersions grow with each write).
        return sorted(
            items,
            key=lambda e: (
                e.get("lastTimestamp") or e.get("eventTime") or "",
                int(e["metadata"].get("resourceVersion") or 0),
            ),
        )

    async def wait_for(
        self,
        check: Callable[[], Awaitable[T | None]],
        *,
        deadline: float = 30.0,
        interval: float = 0.1,
        what: str = "",
    ) -> T:
        """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
        last: T | None = None
        with anyio.move_on_after(deadline):
            while True:
                last = await check()
                if last:
                    return last
                await anyio.sleep(interval)
        raise AssertionError(
            f"timed out after {deadline:.0f}s waiting for {what or check}; last seen: {last!r}"
        )

    @asynccontextmanager
    async def scheduler(
        self, namespace: str | None, node_label: tuple[str, str], *, selector: str = "", **settings: Any
    ) -> AsyncIterator[Passes]:
        """Our scheduler running in this process, for one test's namespace and nodes."""
        chosen = Settings(
            namespace=namespace,
            node_selector=parse_selector(selector or f"{node_label[0]}={node_label[1]}"),
            interval=settings.pop("interval", 1.0),
            **settings,
        )
        passes = Passes()
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_scheduler(self.kube, chosen, handle_signals=False, on_pass=passes.record)
            )
            yield passes
            tg.cancel_scope.cancel()


class Passes:
    """What a running scheduler's passes decided, for tests to wait on."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self._changed = anyio.Event()

    def record(self, stats: PassStats, plan: Plan) -> None:
        """The reconciler's `on_pass` hook."""
        self.plans.append(plan)
        self._changed.set()

    async def more(self, count: int = 2, *, deadline: float = 30.0) -> int:
        """Wait until `count` more passes have run (each plans on a fresh snapshot)."""
        target = len(self.plans) + count
        with anyio.fail_after(deadline):
            while len(self.plans) < target:
                self._changed = anyio.Event()
                await self._changed.wait()
        return len(self.plans)


@asynccontextmanager
async def own_control_plane(*apiserver_args: str) -> AsyncIterator[ControlPlane]:
    """A control plane of a test's own: for tests that stop its parts or change its flags."""
    plane = ControlPlane(quiet=True, apiserver_args=list(apiserver_args))
    await anyio.to_thread.run_sync(plane.start)
    try:
        yield plane
    finally:
        await anyio.to_thread.run_sync(plane.stop)


async def service_account_kubeconfig(
    cluster: Cluster, plane: ControlPlane, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig whose identity is a ServiceAccount (a bearer token, as in its pods)."""
    answer = await cluster.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    token = answer["status"]["token"]
    ca = base64.b64encode(await anyio.Path(plane.pki / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": plane.url, "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    await anyio.Path(path).write_text(json.dumps(config))
    return path


def phase(pod: dict[str, Any] | None) -> str:
    """A pod's status.phase ("" when it is gone)."""
    return str(((pod or {}).get("status") or {}).get("phase") or "")


def node_of(pod: dict[str, Any] | None) -> str:
    """A pod's spec.nodeName."""
    return str(((pod or {}).get("spec") or {}).get("nodeName") or "")


def condition(pod: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    """A pod's condition of this type ({} if none)."""
    for c in ((pod or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def unique(prefix: str) -> str:
    """A short unique name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
