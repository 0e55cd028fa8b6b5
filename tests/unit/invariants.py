"""The invariants of SPEC section 9 as checkers: each returns the violations it finds (empty: holds).

Written from SPEC, not from the planner's code, so that they check it rather than restate it.
They are plain functions of (snapshot, plan, settings), reusable by other tests.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE, Plan, Pod, Snapshot
from custom_scheduler.settings import Settings


class View:
    """SPEC's vocabulary over one snapshot: managed, pending, occupying, eligible, priorities, gangs."""

    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self.snapshot, self.settings = snapshot, settings
        self.pods = {p.key: p for p in snapshot.pods}
        self.managed = {
            k: p
            for k, p in self.pods.items()
            if p.scheduler_name == settings.scheduler_name
            and (settings.namespace is None or p.namespace == settings.namespace)
        }
        self.pending = {
            k: p
            for k, p in self.managed.items()
            if p.phase == "Pending" and not p.node_name and not p.deleting
        }
        self.occupying = {
            k: p for k, p in self.managed.items() if p.node_name and p.phase not in ("Succeeded", "Failed")
        }
        self.eligible = {
            n.name
            for n in snapshot.nodes
            if n.ready and not n.unschedulable and settings.node_selector.matches(n.labels)
        }
        self.classes = {c.name: c for c in snapshot.priority_classes}
        defaults = [c.value for c in snapshot.priority_classes if c.global_default]
        self.default = max(defaults) if defaults else 0
        self.on_node: dict[str, list[Pod]] = defaultdict(list)
        for p in self.occupying.values():
            self.on_node[p.node_name].append(p)
        self.gangs: dict[tuple[str, str], list[Pod]] = defaultdict(list)
        for p in (*self.pending.values(), *self.occupying.values()):
            if self.valid(p) and p.annotations.get(GROUP_NAME):
                self.gangs[(p.namespace, p.annotations[GROUP_NAME])].append(p)

    def priority(self, pod: Pod) -> int:
        """SPEC 3: spec.priority, the class's value, the global default, 0."""
        if pod.priority is not None:
            return pod.priority
        if pod.priority_class in self.classes:
            return self.classes[pod.priority_class].value
        return self.default

    @staticmethod
    def valid(pod: Pod) -> bool:
        """SPEC 4: annotations that make sense."""
        group, raw = pod.annotations.get(GROUP_NAME), pod.annotations.get(MIN_AVAILABLE)
        if raw is not None and (group is None or not raw.strip().isdigit() or int(raw) < 1):
            return False
        return group is None or bool(group.strip())

    def gang_of(self, pod: Pod) -> tuple[str, str] | None:
        """The (namespace, group) of a valid gang member."""
        group = pod.annotations.get(GROUP_NAME)
        return (pod.namespace, group) if group and self.valid(pod) else None

    def unit_priority(self, pod: Pod) -> int:
        """A gang member's gang priority; a lone pod's own."""
        gang = self.gang_of(pod)
        return max(self.priority(m) for m in self.gangs[gang]) if gang else self.priority(pod)

    def min_available(self, gang: tuple[str, str], *, over: str = "pending") -> int:
        """Max of the annotation over pending (or all) members; missing counts 1."""
        members = [m for m in self.gangs[gang] if over == "all" or m.key in self.pending]
        return max((int(m.annotations.get(MIN_AVAILABLE, "1")) for m in members), default=1)


def one_pod_per_node(snapshot: Snapshot, plan: Plan, settings: Settings) -> list[str]:
    """1. No eligible node ends a pass with more than one managed pod occupying or nominated to it."""
    v = View(snapshot, settings)
    evicted = {e.pod for e in plan.evictions}
    binds, noms = Counter(b.node for b in plan.binds), Counter(n.node for n in plan.nominations)
    problems = [f"bound to a node that is not eligible: {b}" for b in plan.binds if b.node not in v.eligible]
    problems += [
        f"nominated to a node that is not eligible: {n}" for n in plan.nominations if n.node not in v.eligible
    ]
    for node in v.eligible:
        if len(v.on_node[node]) > 1:
            continue  # double-booked in the input: nothing to promise about it
        staying = [p for p in v.on_node[node] if p.key not in evicted]
        if len(staying) + binds[node] > 1:
            problems.append(f"{node}: bound while {[p.key for p in staying]} still on it")
        if sum(1 for p in staying if not p.deleting) + binds[node] + noms[node] > 1:
            problems.append(
                f"{node}: {binds[node]} binds, {noms[node]} nominations, staying {[p.key for p in staying]}"
            )
    return problems


def all_or_nothing(snapshot: Snapshot, plan: Plan, settings: Settings) -> list[str]:
    """2. No gang ends a pass partially placed by that pass; a gang is bound together."""
    v = View(snapshot, settings)
    bound = {b.pod for b in plan.binds}
    nominated = {n.pod: n.node for n in plan.nominations}
    problems = []
    for gang, members in v.gangs.items():
        pending = [m for m in members if m.key in v.pending]
        if not pending:
            continue
        placed_now = [
            m for m in pending if m.key in bound or nominated.get(m.key, m.nominated_node) != m.nominated_node
        ]
        placed = [m for m in pending if m.key in bound or m.key in nominated]
        occupying = sum(1 for m in members if m.key in v.occupying)
        if placed_now and occupying + len(placed) < v.min_available(gang):
            problems.append(
                f"gang {gang} placed {len(placed)} + {occupying} running < {v.min_available(gang)}"
            )
        if any(m.key in bound for m in pending) and any(m.key in nominated for m in pending):
            problems.append(f"gang {gang} partly bound, partly nominated")
    return problems


def evictions_justified(snapshot: Snapshot, plan: Plan, settings: Settings) -> list[str]:
    """3. No pod is evicted unless a unit of strictly higher priority is nominated to its node."""
    v = View(snapshot, settings)
    evicted = {e.pod for e in plan.evictions}
    nominee_on = {n.node: n.pod for n in plan.nominations}
    problems = []
    for e in plan.evictions:
        victim = v.occupying.get(e.pod)
        if victim is None or victim.deleting:
            problems.append(f"evicted a pod that was not occupying or already terminating: {e}")
            continue
        if e.preemptor not in {n.pod for n in plan.nominations}:
            problems.append(f"eviction without its preemptor nominated: {e}")
            continue
        preemptor_priority = v.unit_priority(v.pending[e.preemptor])
        if preemptor_priority <= v.unit_priority(victim):
            problems.append(
                f"{e}: preemptor priority {preemptor_priority} not above {v.unit_priority(victim)}"
            )
        here = nominee_on.get(victim.node_name)
        if here is not None and v.unit_priority(v.pending[here]) > v.unit_priority(victim):
            continue
        gang = v.gang_of(victim)
        whole = gang is not None and all(
            m.key in evicted for m in v.gangs[gang] if m.key in v.occupying and not m.deleting
        )
        if not whole:
            problems.append(f"{e}: no higher nominee on its node, and not part of a whole-gang eviction")
    return problems


def after_applying(snapshot: Snapshot, plan: Plan) -> Snapshot:
    """The cluster once a plan is applied and its victims are gone (other terminating pods stay)."""
    evicted = {e.pod for e in plan.evictions}
    bound = {b.pod: b.node for b in plan.binds}
    nominated = {n.pod: n.node for n in plan.nominations}
    pods = []
    for pod in snapshot.pods:
        if pod.key in evicted:
            continue
        if pod.key in bound:
            pods.append(dataclasses.replace(pod, node_name=bound[pod.key], nominated_node=""))
        elif pod.key in nominated:
            pods.append(dataclasses.replace(pod, nominated_node=nominated[pod.key]))
        else:
            pods.append(pod)
    return dataclasses.replace(snapshot, pods=tuple(pods))


def replan_binds_nominees(snapshot: Snapshot, first: Plan, second: Plan, settings: Settings) -> list[str]:
    """5. Applying a plan and planning again binds the nominees and evicts nothing new.

    Two exceptions come from SPEC itself: a nominee waits while its node still holds a
    terminating pod (so does its whole gang), and a unit of strictly higher priority may take
    over a reservation (its nominee is then placed afresh, by preemption if need be).
    """
    v = View(after_applying(snapshot, first), settings)
    second_bound = {b.pod: b.node for b in second.binds}
    first_nodes = {n.node: n.pod for n in first.nominations}
    taken_over = {
        n for n, pod in first_nodes.items() if any(b.node == n and b.pod != pod for b in second.binds)
    } | {n for n, pod in first_nodes.items() if any(x.node == n and x.pod != pod for x in second.nominations)}
    problems = []
    if second.evictions and not taken_over:
        problems.append(f"evicted anew with no reservation taken over: {second.evictions}")
    by_unit: dict[object, list[tuple[str, str]]] = defaultdict(list)
    for n in first.nominations:
        pod = v.pending.get(n.pod)
        if pod is not None:
            by_unit[v.gang_of(pod) or n.pod].append((n.pod, n.node))
    for unit, nominees in by_unit.items():
        if any(node in taken_over for _, node in nominees):
            continue
        if any(v.on_node[node] for _, node in nominees):
            continue  # something still terminating on one of its nodes: it waits
        for key, node in nominees:
            if second_bound.get(key) != node:
                problems.append(f"nominee {key} of {unit} not bound to its free node {node}")
    return problems


def work_conserving(snapshot: Snapshot, plan: Plan, settings: Settings) -> list[str]:
    """6. A pending pod that fits a free eligible node is placed unless a unit ahead took it.

    Checked for lone pods (no gang annotations) that are valid: if an eligible node is left
    with nothing on it, bound to it, nominated to it, or evicted from it, no such pod may be
    left unschedulable.
    """
    v = View(snapshot, settings)
    used = {b.node for b in plan.binds} | {n.node for n in plan.nominations}
    free = sorted(n for n in v.eligible if not v.on_node[n] and n not in used)
    if not free:
        return []
    return [
        f"{u.pod} left pending ({u.reason}) while {free[0]} is free"
        for u in plan.unschedulable
        if not u.invalid and not v.pending[u.pod].annotations
    ]


def accounted(snapshot: Snapshot, plan: Plan, settings: Settings) -> list[str]:
    """Every pending managed pod has exactly one outcome with a reason; nothing else is planned."""
    v = View(snapshot, settings)
    outcomes = Counter(
        [b.pod for b in plan.binds] + [n.pod for n in plan.nominations] + [u.pod for u in plan.unschedulable]
    )
    problems = [f"{k}: {c} outcomes" for k, c in outcomes.items() if c != 1 or k not in v.pending]
    problems += [f"{k}: no outcome" for k in v.pending if k not in outcomes]
    problems += [f"{u.pod}: empty reason" for u in plan.unschedulable if not u.reason.strip()]
    problems += [f"evicted a pod out of scope: {e.pod}" for e in plan.evictions if e.pod not in v.managed]
    for name, items in (
        ("binds", plan.binds),
        ("nominations", plan.nominations),
        ("evictions", plan.evictions),
        ("unschedulable", plan.unschedulable),
    ):
        keys = [i.pod for i in items]
        if keys != sorted(keys):
            problems.append(f"{name} not sorted by pod")
    return problems
