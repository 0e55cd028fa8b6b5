"""No starvation on a real control plane (SPEC 6a): a gang of 4 at the priority of a stream of
short-lived single pods runs once it has waited --reserve-after and 4 nodes have freed, and while
it gathers them its pods show NOMINATED NODE and a reason that says what they hold.

KWOK finishes the singles 4 s after they run (hack/kwok/stages.yaml, `pod-complete-short-lived`).
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio

from tests.e2e.cluster import Cluster, condition, node_of, phase
from tests.e2e.conftest import NodeFactory

SHORT_LIVED = {"custom-scheduler.dev/short-lived": "true"}
RESERVE_AFTER = 5.0


async def _stream(cluster: Cluster, namespace: str) -> None:
    """Single pods, one every 0.6 s, each done 4 s after it runs: more than 4 nodes can take, so
    every node that frees has a single waiting for it."""
    for i in itertools.count():
        await cluster.create_pod(namespace, f"single-{i:03d}", labels=SHORT_LIVED)
        await anyio.sleep(0.6)  # the stream's pace, not a wait for an outcome


async def test_a_gang_behind_a_stream_of_singles_reserves_and_runs(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(4)
    seen_reserving: list[dict[str, Any]] = []
    async with cluster.scheduler(namespace, label, reserve_after=RESERVE_AFTER) as passes:
        async with anyio.create_task_group() as stream:
            stream.start_soon(_stream, cluster, namespace)

            async def busy() -> bool:
                return sum(phase(p) == "Running" for p in await cluster.pods(namespace)) >= 4

            await cluster.wait_for(busy, what="the singles to fill the nodes")
            started = anyio.current_time()
            for i in range(4):
                await cluster.create_pod(namespace, f"gang-{i}", gang="gang", min_available=4)

            async def gang_runs() -> bool:
                gang = [await cluster.pod(namespace, f"gang-{i}") for i in range(4)]
                for pod in gang:
                    message = str(condition(pod, "PodScheduled").get("message") or "")
                    nominated = ((pod or {}).get("status") or {}).get("nominatedNodeName")
                    if nominated and "reserves" in message:
                        seen_reserving.append(pod)
                return all(phase(p) == "Running" for p in gang)

            # --reserve-after, then 4 nodes freeing (each single lives 4 s), and room for passes.
            await cluster.wait_for(gang_runs, deadline=RESERVE_AFTER + 4 + 20, what="the gang to run")
            waited = anyio.current_time() - started
            stream.cancel_scope.cancel()
        await passes.more(1)
    gang = [await cluster.pod(namespace, f"gang-{i}") for i in range(4)]
    assert sorted(node_of(p) for p in gang) == sorted(names), "the gang holds every node, together"
    assert seen_reserving, "while it gathered its nodes, its pods were nominated and said so"
    message = condition(seen_reserving[0], "PodScheduled")["message"]
    assert (
        message.startswith(f"gang {namespace}/gang reserves ") and " of the 4 nodes it needs (for " in message
    )
    assert waited >= RESERVE_AFTER, "it reserved only once it had waited --reserve-after"
