"""Two replicas as real processes: one leads, the other takes over when it dies or stalls; probes and metrics.

Leader election runs with kube-scheduler's defaults (15 s lease, 10 s renew deadline, 2 s retry),
except where a test says otherwise to keep its rounds short.
"""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import anyio
import pytest_asyncio

from custom_scheduler.kube import Kind
from tests.e2e.cluster import Cluster, node_of
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import ControlPlane, free_port


@dataclass
class Replica:
    """One `custom-scheduler run --leader-elect` process and its health port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    async def get(self, path: str) -> tuple[int, str]:
        """GET a path of its health/metrics port (0 when it does not answer: stopped, or stalled)."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(f"http://127.0.0.1:{self.port}{path}") as r,
            ):
                return r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            return 0, str(error)

    async def metric(self, name: str) -> float:
        """A metric's value (0 when absent)."""
        _, text = await self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        return float(match.group(1)) if match else 0.0


def start_replica(
    plane: ControlPlane, namespace: str, label: tuple[str, str], log: Path, *extra: str
) -> Replica:
    """`custom-scheduler run --leader-elect` as its own process, logging to `log`."""
    port = free_port()
    argv = [sys.executable, "-m", "custom_scheduler", "run", f"--kubeconfig={plane.kubeconfig}"]
    argv += [f"--namespace={namespace}", f"--node-selector={label[0]}={label[1]}", "--interval=1"]
    argv += ["--leader-elect", f"--lease-namespace={namespace}", f"--health-port={port}", "--log-format=json"]
    argv += extra
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    return Replica(process, port, log)


@pytest_asyncio.fixture
async def replicas(
    control_plane: ControlPlane, namespace: str, nodes: NodeFactory, tmp_path: Path
) -> AsyncIterator[tuple[list[Replica], tuple[str, str]]]:
    """Two replicas for this test's namespace and nodes, the Lease in the namespace."""
    _, label = await nodes(2)
    started = [
        start_replica(control_plane, namespace, label, tmp_path / f"replica-{i}.log") for i in range(2)
    ]
    yield started, label
    for replica in started:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
            replica.process.wait(timeout=30)


async def leaders(replicas: list[Replica]) -> list[Replica]:
    """The replicas whose custom_scheduler_leader gauge is 1."""
    return [
        r for r in replicas if r.process.poll() is None and await r.metric("custom_scheduler_leader") == 1
    ]


async def test_one_leads_the_other_takes_over_when_it_dies(
    replicas: tuple[list[Replica], tuple[str, str]], cluster: Cluster, namespace: str
) -> None:
    pair, _ = replicas

    async def both_ready() -> bool:
        return all([(await r.get("/readyz"))[0] == 200 for r in pair])

    await cluster.wait_for(both_ready, what="both replicas ready (informers synced)")

    async def one_leader() -> list[Replica] | None:
        found = await leaders(pair)
        return found if len(found) == 1 else None

    (leader,) = await cluster.wait_for(one_leader, what="exactly one leader")
    follower = next(r for r in pair if r is not leader)
    await cluster.create_pod(namespace, "first")
    first = await cluster.wait_for(
        lambda: _bound(cluster, namespace, "first"), what="the leader to bind a pod"
    )
    assert (await leader.get("/livez"))[0] == 200 and (await follower.get("/livez"))[0] == 200
    scheduled = 'scheduler_schedule_attempts_total{profile="custom-scheduler",result="scheduled"}'
    assert await leader.metric(scheduled) == 1
    assert await leader.metric("custom_scheduler_pod_creation_to_bind_seconds_count") == 1
    assert await leader.metric("custom_scheduler_passes_total") >= 1
    assert await follower.metric("custom_scheduler_passes_total") == 0, "a follower does not plan"
    assert await follower.metric("custom_scheduler_leader") == 0
    lease = 'leader_election_master_status{name="custom-scheduler"}'  # client-go's, as kube-scheduler has
    assert (await leader.metric(lease), await follower.metric(lease)) == (1, 0)

    leader.process.kill()  # no clean shutdown: the lease is not released
    leader.process.wait()
    killed_at = datetime.now(UTC)
    await cluster.create_pod(namespace, "second")
    second = await cluster.wait_for(
        lambda: _bound(cluster, namespace, "second"), deadline=30, what="the follower to take over and bind"
    )
    assert node_of(second) != node_of(first)
    assert await follower.metric("custom_scheduler_leader") == 1
    lease = await cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/custom-scheduler")
    acquired = datetime.fromisoformat(lease["spec"]["acquireTime"].replace("Z", "+00:00"))
    # Taken over once the dead leader's 15 s lease ran out, and not much later.
    assert (acquired - killed_at).total_seconds() < 15 + 2 * 2 + 1


async def test_a_leader_that_loses_its_lease_stops_at_once(
    replicas: tuple[list[Replica], tuple[str, str]], cluster: Cluster, namespace: str
) -> None:
    pair, _ = replicas
    await cluster.wait_for(lambda: _one(pair), what="a leader")
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/custom-scheduler"
    lease = await cluster.get(path)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease["spec"].update({"holderIdentity": "someone-else", "renewTime": now, "acquireTime": now})
    status, body = await cluster.request("PUT", path, lease)
    assert status == 200, body

    async def nobody_leads() -> bool:
        return not await leaders(pair)

    # It notices at its next renewal (every 2 s) and stops leading there and then.
    await cluster.wait_for(nobody_leads, deadline=5, what="the deposed leader to stop leading")


async def _one(pair: list[Replica]) -> list[Replica] | None:
    found = await leaders(pair)
    return found if len(found) == 1 else None


async def _bound(cluster: Cluster, namespace: str, name: str) -> dict[str, object] | None:
    pod = await cluster.pod(namespace, name)
    return pod if node_of(pod) else None


async def test_a_leader_that_stalls_and_wakes_after_a_takeover_writes_nothing(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory, tmp_path: Path
) -> None:
    """SIGSTOP freezes the leader (as a long GC pause or a frozen VM would) in the middle of a pass,
    its binds for a burst of low-priority pods half sent. While it is frozen, high-priority pods
    arrive; the other replica takes over and gives them the very nodes the frozen one had planned.
    SIGCONT wakes the old leader with its binds still queued. Round after round, no node ever holds
    two of our pods: a replica whose lease is not known valid sends nothing."""
    names, label = await nodes(STALL_NODES)
    for klass, value in (("stall-low", 10), ("stall-high", 1000)):
        body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": klass}}
        await cluster.create_object({**body, "value": value}, namespace)
    timing = ["--leader-elect-lease-duration=6", "--leader-elect-renew-deadline=4"]
    timing += ["--leader-elect-retry-period=1", "--max-concurrency=1"]  # one bind at a time
    pair = [
        start_replica(control_plane, namespace, label, tmp_path / f"replica-{i}.log", *timing)
        for i in range(2)
    ]
    try:
        for round_ in range(3):
            (leader,) = await cluster.wait_for(lambda: _one(pair), what="a leader")
            other = next(r for r in pair if r is not leader)
            await _freeze_mid_pass(
                cluster, namespace, leader, [f"low-{round_}-{i:02d}" for i in range(STALL_NODES)]
            )
            try:
                # As many as there are free nodes: those the frozen leader planned for the rest of
                # its burst. (Should one more of its binds land meanwhile, a high pod preempts a
                # low one, which goes at once: grace 0.)
                bound = sum(1 for p in await cluster.pods(namespace) if node_of(p))
                highs = [f"high-{round_}-{i:02d}" for i in range(STALL_NODES - bound)]
                async with anyio.create_task_group() as tg:
                    for name in highs:
                        tg.start_soon(
                            functools.partial(
                                cluster.create_pod, namespace, name, priority_class="stall-high"
                            )
                        )
                await cluster.wait_for(
                    functools.partial(_leads, other), deadline=30, what="the other to take over"
                )
                await cluster.wait_for(
                    functools.partial(_all_bound, cluster, namespace, highs),
                    deadline=30,
                    what="the new leader to bind the high-priority pods",
                )
            finally:
                leader.process.send_signal(signal.SIGCONT)

            async def stood_down(leader: Replica = leader) -> bool:
                answers = (await leader.get("/readyz"))[0] == 200
                return answers and await leader.metric("custom_scheduler_leader") == 0

            await cluster.wait_for(stood_down, deadline=30, what="the woken leader to stand down")
            pods = await cluster.pods(namespace)
            per_node = Counter(node_of(p) for p in pods if node_of(p))
            doubled = {node: count for node, count in per_node.items() if count > 1}
            assert doubled == {}, f"round {round_}: two of our pods on one node: {doubled}"
            assert set(per_node) == set(names)
            await _empty(cluster, namespace)
        logs = [line for r in pair for line in r.log.read_text().splitlines()]
        assert not [line for line in logs if '"scheduler_failed"' in line]
        # The freezes caught a leader with writes queued, and the fence stopped them.
        assert [line for line in logs if '"writes_stopped"' in line]
    finally:
        for replica in pair:
            replica.process.send_signal(signal.SIGCONT)
            replica.process.send_signal(signal.SIGTERM)
            replica.process.wait(timeout=30)


STALL_NODES = 12


async def _freeze_mid_pass(cluster: Cluster, namespace: str, leader: Replica, burst: list[str]) -> None:
    """Create a burst of low-priority pods and SIGSTOP the leader as soon as the first is bound."""
    _, version = await cluster.kube.list(Kind("pods", f"/api/v1/namespaces/{namespace}/pods"))
    async with anyio.create_task_group() as tg:
        for name in burst:
            tg.start_soon(
                functools.partial(cluster.create_pod, namespace, name, priority_class="stall-low", grace=0)
            )
    with anyio.fail_after(30):
        async for _, pod in cluster.kube.watch(Kind("pods", f"/api/v1/namespaces/{namespace}/pods"), version):
            if node_of(pod):
                leader.process.send_signal(signal.SIGSTOP)
                return


async def _all_bound(cluster: Cluster, namespace: str, names: list[str]) -> bool:
    bound = {p["metadata"]["name"] for p in await cluster.pods(namespace) if node_of(p)}
    return bound >= set(names)


async def _empty(cluster: Cluster, namespace: str) -> None:
    """Delete every pod of the namespace at once and wait until none is left."""
    await cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods", {"gracePeriodSeconds": 0})

    async def gone() -> bool:
        return not await cluster.pods(namespace)

    await cluster.wait_for(gone, what="the round's pods gone")


async def _leads(replica: Replica) -> bool:
    return await replica.metric("custom_scheduler_leader") == 1


async def _bound_after(cluster: Cluster, namespace: str, created: list[str], first: int) -> bool:
    """Whether some pod created after the `first` ones is bound."""
    later = set(created[first:])
    return any(node_of(p) for p in await cluster.pods(namespace) if p["metadata"]["name"] in later)
