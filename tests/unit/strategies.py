"""Generated clusters for property tests: every kind of pod and node SPEC talks about, in any mix.

A cluster is built procedurally from a random stream that hypothesis draws (and can shrink),
so clusters of hundreds of nodes and a thousand pods cost little to make.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import strategies as st

from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE, Node, Pod, PriorityClass, Snapshot

OURS = "custom-scheduler"
CLASSES = (
    PriorityClass("low", 10),
    PriorityClass("mid", 100),
    PriorityClass("high", 1000),
    PriorityClass("fallback", 50, global_default=True),
    PriorityClass("polite", 500, preemption_policy="Never"),
)
GANG_ANNOTATIONS: tuple[dict[str, str], ...] = (
    {GROUP_NAME: "g1", MIN_AVAILABLE: "2"},
    {GROUP_NAME: "g1", MIN_AVAILABLE: "3"},
    {GROUP_NAME: "g2"},
    {GROUP_NAME: "g2", MIN_AVAILABLE: "1"},
    {GROUP_NAME: "g3", MIN_AVAILABLE: "4"},
    {GROUP_NAME: "g4", MIN_AVAILABLE: "2"},
    {GROUP_NAME: "bad", MIN_AVAILABLE: "x"},  # invalid: not an integer
    {GROUP_NAME: "g3", MIN_AVAILABLE: "0"},  # invalid: below 1
    {MIN_AVAILABLE: "2"},  # invalid: no group-name
    {GROUP_NAME: ""},  # invalid: empty group-name
)


def make_cluster(rng: random.Random, n_nodes: int, n_pods: int, *, double_booking: bool = False) -> Snapshot:
    """A cluster: nodes Ready or not, cordoned, in two pools; pods of every state and kind."""
    nodes = [
        Node(
            f"n{i:03d}",
            labels={"pool": rng.choice("ab")},
            ready=rng.random() > 0.1,
            unschedulable=rng.random() < 0.08,
        )
        for i in range(n_nodes)
    ]
    classes = tuple(c for c in CLASSES if rng.random() < 0.8)
    free = [n.name for n in nodes]
    rng.shuffle(free)
    pods = []
    for i in range(n_pods):
        namespace = rng.choice(("a", "a", "b"))
        state = rng.choices(
            ("pending", "occupying", "bound-pending", "terminating", "finished", "pending-deleting", "other"),
            weights=(45, 25, 5, 7, 6, 3, 9),
        )[0]
        annotations = rng.choice(GANG_ANNOTATIONS) if rng.random() < 0.4 else {}
        pod = Pod(
            namespace=namespace,
            name=f"p{i:04d}",
            uid=f"uid-{i}",
            scheduler_name="someone-else" if state == "other" else OURS,
            phase="Pending",
            creation=float(rng.randrange(30)),
            priority=rng.choice((None, None, 0, 10, 100, 1000)),
            priority_class=rng.choice(("", "", "low", "high", "polite", "missing")),
            preemption_policy="Never" if rng.random() < 0.05 else None,
            annotations=annotations,
        )
        if state in ("occupying", "bound-pending", "terminating", "finished", "other") and nodes:
            if free:
                node = free.pop()
            elif double_booking and rng.random() < 0.1:
                node = rng.choice(nodes).name
            else:
                node = ""
            if node:
                phase = {"occupying": "Running", "bound-pending": "Pending", "terminating": "Running"}.get(
                    state, rng.choice(("Succeeded", "Failed")) if state == "finished" else "Running"
                )
                # Some terminating pods are stuck: past `now` (1000) plus the default 60 s bound.
                deleted_at = float(rng.randrange(850, 1010)) if state == "terminating" else 0.0
                pod = replace(
                    pod,
                    node_name=node,
                    phase=phase,
                    deleting=state == "terminating",
                    deletion_time=deleted_at,
                )
                if state in {"finished", "other"}:
                    free.append(node)  # they do not occupy
        elif state == "pending-deleting":
            pod = replace(pod, deleting=True)
        if not pod.node_name and rng.random() < 0.15 and nodes:
            pod = replace(pod, nominated_node=rng.choice([*[n.name for n in nodes], "ghost"]))
        pods.append(pod)
    return Snapshot(tuple(nodes), tuple(pods), classes, now=1000.0)


@st.composite
def clusters(
    draw: st.DrawFn, *, max_nodes: int = 40, max_pods: int = 120, double_booking: bool = False
) -> Snapshot:
    """A generated cluster of up to `max_nodes` nodes and `max_pods` pods."""
    rng = draw(st.randoms(use_true_random=False))
    n_nodes = draw(st.integers(0, max_nodes))
    n_pods = draw(st.integers(0, max_pods))
    return make_cluster(rng, n_nodes, n_pods, double_booking=double_booking)
