"""Faults on the real control plane: races, refusals, lost nodes, stuck victims, a restarted API server.

The scheduler must keep its promises while the world misbehaves: no crash, no pod bound twice,
no pod lost, and every waiting pod saying why.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import pytest_asyncio
import structlog

from custom_scheduler import convert
from custom_scheduler.cache import Cache
from custom_scheduler.informers import Informer
from custom_scheduler.kube import Kind, Kube, connect, load_configuration, ssl_context
from custom_scheduler.model import Pod
from custom_scheduler.reconciler import Reconciler
from custom_scheduler.settings import Settings, parse_selector
from tests.e2e.cluster import Cluster, condition, node_of, own_control_plane, phase
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import ControlPlane

LOW, HIGH = "fault-low", "fault-high"


@pytest_asyncio.fixture
async def classes(cluster: Cluster, namespace: str) -> None:
    """Two priority classes for these tests."""
    await cluster.create_priority_classes({LOW: 10, HIGH: 1000})


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def _bound(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if node_of(pod) else None


async def test_a_bind_racing_a_deletion_or_another_binder_is_an_outcome(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(2)
    gone = await cluster.create_pod(namespace, "gone")
    taken = await cluster.create_pod(namespace, "taken")
    await cluster.delete(f"/api/v1/namespaces/{namespace}/pods/gone")
    await cluster.kube.bind(namespace, "taken", names[1], convert.binding_body(namespace, "taken", names[1]))
    # The cache still says both are pending: the watch has not told this scheduler yet.
    cache = Cache()
    cache.nodes.replace([convert.node_from_api(await cluster.get(f"/api/v1/nodes/{n}")) for n in names])
    cache.pods.replace([convert.pod_from_api(gone), convert.pod_from_api(taken)])
    settings = Settings(namespace=namespace, node_selector=parse_selector(f"{label[0]}={label[1]}"))
    stats, result = await Reconciler(cluster.kube, cache, settings).run_pass()
    assert len(result.binds) == 2
    assert stats.outcomes == {"bind_not_found": 1, "bind_conflict": 1}
    assert node_of(await cluster.pod(namespace, "taken")) == names[1], "the other binder's choice stands"
    assert [e for e in await cluster.events(namespace) if e["reason"] == "Scheduled"] == []


async def test_an_eviction_refused_by_a_budget_waits_with_a_reason_then_proceeds(
    cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None
) -> None:
    (node,), label = await nodes(1)
    await cluster.create_pod(namespace, "guarded", priority_class=LOW, grace=0)
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"guard": "yes"}}},
    }
    await cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/guarded",
        {"metadata": {"labels": {"guard": "yes"}}},
        content_type="application/merge-patch+json",
    )
    async with cluster.scheduler(namespace, label):
        await cluster.wait_for(lambda: _running(cluster, namespace, "guarded"), what="the guarded pod to run")
        await cluster.create_object(pdb, namespace)

        async def budget_active() -> bool:
            got = await cluster.get(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/guard")
            return ((got or {}).get("status") or {}).get("currentHealthy") == 1

        await cluster.wait_for(budget_active, what="the budget to count the guarded pod")
        await cluster.create_pod(namespace, "urgent", priority_class=HIGH)

        async def refusal_said() -> list[dict[str, Any]] | None:
            events = [
                e
                for e in await cluster.events(namespace, "urgent")
                if e["type"] == "Warning" and "was refused" in e["message"]
            ]
            return events or None

        (refused, *_) = await cluster.wait_for(
            refusal_said, what="the preemptor to say its eviction was refused"
        )
        assert f"eviction of {namespace}/guarded from node {node} was refused" in refused["message"]
        assert "disruption budget" in refused["message"], "the API server's words"
        urgent = await cluster.pod(namespace, "urgent")
        assert node_of(urgent) == ""
        assert "was refused" in condition(urgent, "PodScheduled").get("message", "")
        guarded = await cluster.pod(namespace, "guarded")
        assert (guarded or {}).get("metadata", {}).get("deletionTimestamp") is None
        # A pod that stays is never marked as going (SPEC 6 v2).
        assert condition(guarded, "DisruptionTarget").get("status") != "True"
        await cluster.delete(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/guard")
        urgent = await cluster.wait_for(
            lambda: _running(cluster, namespace, "urgent"), what="the preemptor to run once the budget allows"
        )
    assert node_of(urgent) == node
    assert await cluster.pod(namespace, "guarded") is None


async def test_a_node_deleted_under_a_nominee(
    cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None
) -> None:
    names, label = await nodes(2)
    await cluster.create_pod(namespace, "slow", priority_class=LOW, grace=60, node=names[0])
    await cluster.create_pod(namespace, "busy", priority_class=HIGH, node=names[1])
    try:
        await _nominee_moves_on(cluster, namespace, names, label)
    finally:  # its node is gone, so no kubelet (KWOK) will ever finish deleting it
        await cluster.delete(f"/api/v1/namespaces/{namespace}/pods/slow", {"gracePeriodSeconds": 0})


async def _nominee_moves_on(
    cluster: Cluster, namespace: str, names: list[str], label: tuple[str, str]
) -> None:
    async with cluster.scheduler(namespace, label):
        await cluster.create_pod(namespace, "nominee", priority_class=HIGH)

        async def nominated() -> bool:
            pod = await cluster.pod(namespace, "nominee")
            return ((pod or {}).get("status") or {}).get("nominatedNodeName") == names[0]

        await cluster.wait_for(nominated, what="the nominee to wait for the slow victim")
        # kubectl describe shows why it waits, as kube-scheduler's users expect (issue 15).
        said = [e for e in await cluster.events(namespace, "nominee") if e["reason"] == "Nominated"]
        assert [e["message"] for e in said] == [
            f"Nominated to node {names[0]}; waiting for {namespace}/slow to terminate"
        ]
        await cluster.delete(f"/api/v1/nodes/{names[0]}")
        await cluster.delete(f"/api/v1/namespaces/{namespace}/pods/busy", {"gracePeriodSeconds": 0})
        nominee = await cluster.wait_for(
            lambda: _running(cluster, namespace, "nominee"), what="the nominee to go to the node still there"
        )
    assert node_of(nominee) == names[1]


async def test_a_victim_that_never_goes_holds_its_nominee_only_until_the_bound(
    cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None
) -> None:
    names, label = await nodes(2)
    finalizer = "custom-scheduler.dev/never-goes"
    # "other" first: at equal priority the newest goes first, then by node name, so "stuck" is
    # the first victim.
    await cluster.create_pod(namespace, "other", priority_class=LOW, grace=1, node=names[1])
    await cluster.create_pod(
        namespace, "stuck", priority_class=LOW, grace=1, finalizers=[finalizer], node=names[0]
    )
    for name in ("stuck", "other"):
        await cluster.wait_for(functools.partial(_running, cluster, namespace, name), what=f"{name} to run")
    try:
        async with cluster.scheduler(namespace, label, stuck_after=4.0):
            await cluster.create_pod(namespace, "urgent", priority_class=HIGH)

            async def stuck_terminating() -> dict[str, Any] | None:
                pod = await cluster.pod(namespace, "stuck")
                return pod if (pod or {}).get("metadata", {}).get("deletionTimestamp") else None

            await cluster.wait_for(stuck_terminating, what="the first victim to be evicted")
            # Within the bound (grace 1 s + 4 s), nobody else is evicted.
            with anyio.move_on_after(4.0):
                while True:
                    other = await cluster.pod(namespace, "other")
                    assert not other["metadata"].get("deletionTimestamp"), (
                        "evicted a bystander within the bound"
                    )
                    assert node_of(await cluster.pod(namespace, "urgent")) == ""
                    await anyio.sleep(0.1)
            urgent = await cluster.wait_for(
                lambda: _running(cluster, namespace, "urgent"),
                what="the nominee to go elsewhere after the bound",
            )
        assert node_of(urgent) == names[1]
        assert (await cluster.pod(namespace, "stuck")) is not None, "the stuck victim is still there"
    finally:
        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/stuck",
            {"metadata": {"finalizers": None}},
            content_type="application/merge-patch+json",
        )


def _etcd_compact(etcd_url: str, *, bump: bool = False) -> int:
    """Compact etcd to its current revision (through its JSON gateway); the revision. With `bump`,
    write a key of its own first, so that the compaction passes every revision read so far."""
    key = base64.b64encode(b"/").decode()

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{etcd_url}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    if bump:
        post("/v3/kv/put", {"key": base64.b64encode(b"/test/bump").decode(), "value": key})
    revision = int(post("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


async def test_a_list_whose_continue_token_expires_midway_is_taken_again_whole() -> None:
    # Without the watch cache, a paged list reads etcd at the first page's revision: compacting
    # etcd past it expires the continue token (410), as a slow relist of a big cluster meets.
    async with (
        own_control_plane("--watch-cache=false") as plane,
        connect(str(plane.kubeconfig), None) as kube,
    ):
        cluster = Cluster(kube)
        await cluster.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}
        )
        names = [f"p{i}" for i in range(5)]
        for name in names:
            await cluster.create_pod("c", name)
        kube.page_size = 2
        compacted: list[int] = []

        def convert_and_compact(obj: dict[str, Any]) -> Pod:
            # While the first page is being read, etcd compacts past the list's revision.
            if not compacted:
                compacted.append(_etcd_compact(plane.etcd_url, bump=True))
            return convert.pod_from_api(obj)

        cache = Cache()
        kind = Kind("pods", "/api/v1/namespaces/c/pods", "spec.schedulerName=custom-scheduler")
        informer = Informer(kube, kind, cache.pods, convert_and_compact, lambda: None)
        with structlog.testing.capture_logs() as logs, anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(informer.run)
                await informer.synced.wait()
                tg.cancel_scope.cancel()
        assert compacted, "etcd was compacted mid-list"
        assert sorted(p.name for p in cache.pods.items.values()) == names
        assert [e["dropped"] for e in logs if e["event"] == "list_restarted"] == [2]


async def test_an_api_server_restart_and_an_expired_watch_lose_nothing(control_plane: ControlPlane) -> None:
    async with own_control_plane() as own_plane, connect(str(own_plane.kubeconfig), None) as kube:
        cluster = Cluster(kube)
        names = await cluster.create_nodes(3, labels={"restart": "yes"}, prefix="restart")
        await cluster.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "r"}}
        )
        await cluster.create_pod("r", "before")
        with structlog.testing.capture_logs() as logs:
            async with cluster.scheduler("r", ("restart", "yes")):
                await cluster.wait_for(
                    lambda: _bound(cluster, "r", "before"), what="a bind before the restart"
                )
                await anyio.to_thread.run_sync(own_plane.stop_apiserver)
                await anyio.to_thread.run_sync(_etcd_compact, own_plane.etcd_url)
                await anyio.to_thread.run_sync(own_plane.start_apiserver)
                for name in ("after-1", "after-2"):
                    await cluster.create_pod("r", name)
                for name in ("after-1", "after-2"):
                    await cluster.wait_for(
                        functools.partial(_bound, cluster, "r", name), deadline=60, what=name
                    )
        events = Counter(entry["event"] for entry in logs)
        assert events["watch_restarted"] >= 1, "the broken streams were noticed"
        assert events["watch_expired"] >= 1, "a watch from before the compaction was told to relist"
        pods = await cluster.pods("r")
        assert sorted(node_of(p) for p in pods) == sorted(names), "every pod bound, one per node"
        scheduled = Counter(
            e["involvedObject"]["name"] for e in await cluster.events("r") if e["reason"] == "Scheduled"
        )
        assert set(scheduled.values()) == {1}


async def test_a_scheduler_killed_mid_pass_and_restarted_converges(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory, tmp_path: Path
) -> None:
    names, label = await nodes(20)
    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(functools.partial(cluster.create_pod, namespace, f"p{i:02d}"))
    argv = [
        sys.executable, "-m", "custom_scheduler", "run", f"--kubeconfig={control_plane.kubeconfig}",
        f"--namespace={namespace}", f"--node-selector={label[0]}={label[1]}", "--log-format=json",
        "--max-concurrency=2", "--health-port=0",
    ]  # fmt: skip

    async def bound_count() -> int:
        return sum(1 for p in await cluster.pods(namespace) if node_of(p))

    first = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await cluster.wait_for(bound_count, interval=0.01, what="the first binds")
    first.kill()  # SIGKILL, mid-pass: some binds done, some not
    await first.wait()
    second = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        async def converged() -> bool:
            pods = await cluster.pods(namespace)
            waiting = [p for p in pods if not node_of(p)]
            return await bound_count() == 20 and all(
                condition(p, "PodScheduled").get("message") for p in waiting
            )

        await cluster.wait_for(converged, deadline=60, what="20 bound and 10 waiting with a reason")
    finally:
        second.terminate()
        await second.wait()
    per_node = Counter(node_of(p) for p in await cluster.pods(namespace) if node_of(p))
    assert sorted(per_node) == sorted(names) and set(per_node.values()) == {1}


class SilencingProxy:
    """A TCP proxy to the API server that can make every connection open now go silent, as a dead
    peer or a half-open connection does: nothing more reaches the client, no FIN either. A client
    that writes again on a silenced connection finds it closed (a pooled connection, reused).
    Connections made later pass normally."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._open: list[list[bool]] = []  # one flag per connection: silenced

    def silence(self) -> None:
        """Silence every connection open now."""
        for flag in self._open:
            flag[0] = True

    async def serve(self, task_status: anyio.abc.TaskStatus[int]) -> None:
        """Accept connections until cancelled; reports the port it listens on."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(self._link)

    async def _link(self, client: anyio.abc.SocketStream) -> None:
        # One side closing mid-write ends the link, as it would a real one.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self._pump(client)

    async def _pump(self, client: anyio.abc.SocketStream) -> None:
        silenced = [False]
        self._open.append(silenced)
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream,
            anyio.create_task_group() as tg,
        ):

            async def up() -> None:
                async for data in client:
                    if silenced[0]:
                        break  # a silenced connection used again: closed
                    await upstream.send(data)
                tg.cancel_scope.cancel()

            async def down() -> None:
                async for data in upstream:
                    if not silenced[0]:
                        await client.send(data)
                if not silenced[0]:
                    tg.cancel_scope.cancel()

            tg.start_soon(up)
            tg.start_soon(down)


async def test_a_watch_that_goes_silent_is_given_up_within_a_minute(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    _, label = await nodes(2)
    upstream = urllib.parse.urlsplit(control_plane.url).port
    assert upstream is not None
    proxy = SilencingProxy(upstream)
    configuration = await load_configuration(str(control_plane.kubeconfig), None)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        configuration.host = f"https://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(ssl=ssl_context(configuration))
        with structlog.testing.capture_logs() as logs:
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                Cluster(Kube(configuration, session)).scheduler(namespace, label),
            ):
                await cluster.create_pod(namespace, "before")
                await cluster.wait_for(lambda: _bound(cluster, namespace, "before"), what="a bind before")
                proxy.silence()  # the watches' connections stay open and say nothing more
                await cluster.create_pod(namespace, "after")
                # Seen once the silent pods watch is given up and resumed: within a minute, not 330 s.
                await cluster.wait_for(
                    lambda: _bound(cluster, namespace, "after"), deadline=100, what="the pod created after"
                )
        tg.cancel_scope.cancel()
    restarts = [e for e in logs if e["event"] == "watch_restarted" and e["kind"] == "pods"]
    assert restarts and "Timeout" in restarts[0]["error"], restarts


# The scheduler as its own process, its clock 150 s ahead of the API server's (time.time only:
# what the scheduler reads the wall clock with).
_AHEAD = (
    "import runpy, time; _time = time.time; time.time = lambda: _time() + 150; "
    "runpy.run_module('custom_scheduler', run_name='__main__', alter_sys=True)"
)


async def test_a_scheduler_whose_clock_is_ahead_does_not_judge_a_terminating_victim_stuck(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None
) -> None:
    names, label = await nodes(2)
    finalizer = "custom-scheduler.dev/holds-on"
    # "other" first: at equal priority the newest goes first, so "victim" is the one evicted.
    await cluster.create_pod(namespace, "other", priority_class=LOW, grace=1, node=names[1])
    await cluster.create_pod(
        namespace, "victim", priority_class=LOW, grace=1, finalizers=[finalizer], node=names[0]
    )
    for name in ("victim", "other"):
        await cluster.wait_for(functools.partial(_running, cluster, namespace, name), what=f"{name} to run")
    argv = [
        sys.executable, "-c", _AHEAD, "run", f"--kubeconfig={control_plane.kubeconfig}",
        f"--namespace={namespace}", f"--node-selector={label[0]}={label[1]}", "--interval=1",
        "--health-port=0",
    ]  # fmt: skip
    scheduler = await anyio.open_process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await cluster.create_pod(namespace, "urgent", priority_class=HIGH)

        async def victim_terminating() -> bool:
            return bool(
                ((await cluster.pod(namespace, "victim")) or {}).get("metadata", {}).get("deletionTimestamp")
            )

        await cluster.wait_for(victim_terminating, what="the victim to be evicted")
        # Its deletionTimestamp is 1 s away on the server's clock; on the scheduler's own, 149 s
        # ago, far past the 60 s bound. Measured against the server's time it is not stuck, so
        # nobody else is evicted meanwhile.
        with anyio.move_on_after(10.0):
            while True:
                other = await cluster.pod(namespace, "other")
                assert not other["metadata"].get("deletionTimestamp"), (
                    "a bystander evicted: skew not corrected"
                )
                await anyio.sleep(0.2)
        assert scheduler.returncode is None, "the scheduler is still running"
    finally:
        scheduler.terminate()
        await scheduler.wait()
        await cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/victim",
            {"metadata": {"finalizers": None}},
            content_type="application/merge-patch+json",
        )
