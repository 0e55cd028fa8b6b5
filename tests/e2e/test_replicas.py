"""Two replicas as real processes: one leads, the other takes over when it dies; probes and metrics.

Leader election runs with kube-scheduler's defaults (15 s lease, 10 s renew deadline, 2 s retry).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest_asyncio

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
        """GET a path of its health/metrics port."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{self.port}{path}") as r,
            ):
                return r.status, await r.text()
        except aiohttp.ClientError as error:
            return 0, str(error)

    async def metric(self, name: str) -> float:
        """A metric's value (0 when absent)."""
        _, text = await self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        return float(match.group(1)) if match else 0.0


def start_replica(plane: ControlPlane, namespace: str, label: tuple[str, str], log: Path) -> Replica:
    """`custom-scheduler run --leader-elect` as its own process, logging to `log`."""
    port = free_port()
    argv = [sys.executable, "-m", "custom_scheduler", "run", f"--kubeconfig={plane.kubeconfig}"]
    argv += [f"--namespace={namespace}", f"--node-selector={label[0]}={label[1]}", "--interval=1"]
    argv += ["--leader-elect", f"--lease-namespace={namespace}", f"--health-port={port}", "--log-format=json"]
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
    """The replicas whose scheduler_leader gauge is 1."""
    return [r for r in replicas if r.process.poll() is None and await r.metric("scheduler_leader") == 1]


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
    assert await leader.metric('scheduler_schedule_attempts_total{result="scheduled"}') == 1
    assert await leader.metric("scheduler_pod_creation_to_bind_seconds_count") == 1
    assert await leader.metric("scheduler_passes_total") >= 1
    assert await follower.metric("scheduler_passes_total") == 0, "a follower does not plan"
    assert await follower.metric("scheduler_leader") == 0

    leader.process.kill()  # no clean shutdown: the lease is not released
    leader.process.wait()
    killed_at = datetime.now(UTC)
    await cluster.create_pod(namespace, "second")
    second = await cluster.wait_for(
        lambda: _bound(cluster, namespace, "second"), deadline=30, what="the follower to take over and bind"
    )
    assert node_of(second) != node_of(first)
    assert await follower.metric("scheduler_leader") == 1
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
