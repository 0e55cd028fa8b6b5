"""Gang members that differ: which member goes to which node (SPEC 4, "Members that differ").

A gang whose members have different constraints (a parameter server on one pool, workers on
another) is placed when *some* assignment of its members to distinct nodes each may use exists.
Taking nodes greedily, member by member, can miss it; this finds a largest assignment (a maximum
bipartite matching). Members with equal constraints are one class and nodes that the same
classes may use are one kind, so the flow runs on a graph of classes and kinds, not pods and
nodes: a gang of thousands over thousands of nodes is a graph of a handful of vertices.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from custom_scheduler.model import Constraints, Pod


def match(members: Sequence[Pod], nodes: Sequence[int], fits: Mapping[Constraints, int]) -> dict[int, Pod]:
    """A largest assignment {node: member} of members to distinct nodes that their constraints
    allow (`fits`: constraints -> bit set of nodes). Deterministic: earlier members and nodes
    (in the order given) are preferred."""
    classes: dict[Constraints, list[Pod]] = {}
    for pod in members:
        classes.setdefault(pod.constraints, []).append(pod)
    if len(classes) == 1:
        ((constraints, pods),) = classes.items()
        usable = [n for n in nodes if fits[constraints] >> n & 1]
        return dict(zip(usable, pods, strict=False))
    order = list(classes)
    kinds: dict[tuple[bool, ...], list[int]] = {}
    for node in nodes:
        signature = tuple(bool(fits[c] >> node & 1) for c in order)
        if any(signature):
            kinds.setdefault(signature, []).append(node)
    kinds_list = list(kinds.items())
    flows = _max_flow(
        [len(classes[c]) for c in order],
        [len(group) for _, group in kinds_list],
        [[i for i, allowed in enumerate(signature) if allowed] for signature, _ in kinds_list],
    )
    assignment: dict[int, Pod] = {}
    used = [0] * len(kinds_list)  # nodes of each kind given out so far, in order
    for i, constraints in enumerate(order):
        waiting = iter(classes[constraints])
        for j, (_, group) in enumerate(kinds_list):
            for node in group[used[j] : used[j] + flows[i][j]]:
                assignment[node] = next(waiting)
            used[j] += flows[i][j]
    return assignment


def _max_flow(supply: list[int], room: list[int], allowed: list[list[int]]) -> list[list[int]]:
    """Edmonds-Karp: `supply[i]` members of class i, `room[j]` nodes of kind j, which classes
    each kind allows; how many members of each class go to each kind (flow[i][j])."""
    classes, kinds = len(supply), len(room)
    source, sink = classes + kinds, classes + kinds + 1
    residual: dict[int, dict[int, int]] = {v: {} for v in range(classes + kinds + 2)}
    for i, count in enumerate(supply):
        residual[source][i] = count
        residual[i][source] = 0
    for j, count in enumerate(room):
        residual[classes + j][sink] = count
        residual[sink][classes + j] = 0
        for i in allowed[j]:
            residual[i][classes + j] = count
            residual[classes + j][i] = 0
    while True:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            vertex = queue.popleft()
            for target, capacity in residual[vertex].items():
                if capacity > 0 and target not in parent:
                    parent[target] = vertex
                    queue.append(target)
        if sink not in parent:
            break
        path, vertex = [], sink
        while vertex != source:
            path.append((parent[vertex], vertex))
            vertex = parent[vertex]
        push = min(residual[a][b] for a, b in path)
        for a, b in path:
            residual[a][b] -= push
            residual[b][a] += push
    # What went from class i to kind j is what came back on the reverse edge.
    return [[residual[classes + j].get(i, 0) for j in range(kinds)] for i in range(classes)]
