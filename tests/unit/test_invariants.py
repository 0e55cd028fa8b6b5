"""SPEC section 9, checked on generated clusters: one property test per invariant.

The checkers are written from SPEC alone (sections 2 to 6 define the words they use), not from
the planner's code, so that they check it rather than restate it. Each is a plain function of
(snapshot, plan, settings) returning the violations it finds, each violation a sentence that
quotes the invariant: reusable by any other test (a soak test, a benchmark) that has a snapshot
and a plan.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    GROUP_NAME,
    MIN_AVAILABLE,
    PREEMPT_NEVER,
    Node,
    Plan,
    Pod,
    Snapshot,
    Taint,
    Term,
    Toleration,
)
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings
from tests.unit.strategies import describe, double_booked, large_snapshots, scopes, snapshots

Unit = tuple[str, str, str]  # ("gang", namespace, group-name) or ("pod", namespace, name)

INV1 = "SPEC 9.1: no eligible node ends a pass with more than one managed pod occupying or nominated to it"
INV2 = "SPEC 9.2: no gang ends a pass partially placed by that pass (all-or-nothing)"
INV3 = (
    "SPEC 9.3: no pod is evicted unless a unit of strictly higher priority is nominated to its node "
    "in the same pass"
)
INV4 = "SPEC 9.4: the plan does not depend on the order of the input lists"
INV5 = "SPEC 9.5: applying a plan and planning again (victims gone) binds the nominees and evicts nothing new"
INV6 = (
    "SPEC 9.6: work-conserving: a pending pod that fits a free eligible node is placed unless a unit "
    "ahead of it took that node"
)
ACCOUNTED = "every pending pod gets exactly one outcome (bind, nomination or a reason), and only they do"
INV7 = (
    "SPEC 9.7: no pod is bound or nominated to a node that is not feasible for it, and no pod is "
    "evicted for a preemptor that could not run on its node"
)
INTEGRITY = "SPEC 6: a gang is never left broken (gang integrity)"
RESERVED = (
    "SPEC 6: a nominated node is reserved: only its nominee, or a unit of strictly higher priority, "
    "may use it"
)


class View:
    """SPEC's words over one snapshot: managed, pending, occupying, eligible, priority, units, gangs."""

    def __init__(self, snapshot: Snapshot, scope: Settings) -> None:
        self.snapshot, self.scope = snapshot, scope
        self.by_key = {p.key: p for p in snapshot.pods}
        self.nodes = {n.name: n for n in snapshot.nodes}
        # SPEC 2.
        self.managed = {
            p.key: p
            for p in snapshot.pods
            if p.scheduler_name == scope.scheduler_name and scope.namespace in (None, p.namespace)
        }
        self.pending = {
            k: p
            for k, p in self.managed.items()
            if p.phase == "Pending" and not p.node_name and not p.deleting and not p.gated
        }
        self.occupying = {
            k: p for k, p in self.managed.items() if p.node_name and p.phase not in ("Succeeded", "Failed")
        }
        self.eligible = {
            n.name
            for n in snapshot.nodes
            if n.ready and not n.unschedulable and scope.node_selector.matches(n.labels)
        }
        self.on_node: dict[str, list[Pod]] = defaultdict(list)
        for p in self.occupying.values():
            self.on_node[p.node_name].append(p)
        # SPEC 2 (v2): what pods that are not ours request on each node.
        self.others: dict[str, list[Pod]] = defaultdict(list)
        for p in snapshot.pods:
            if p.key not in self.managed and p.node_name and p.phase not in ("Succeeded", "Failed"):
                self.others[p.node_name].append(p)
        # SPEC 3.
        self.classes = {c.name: c for c in snapshot.priority_classes}
        self.default = next((c.value for c in snapshot.priority_classes if c.global_default), 0)
        # SPEC 4: members are valid pending or occupying pods with the gang's group-name.
        self.gangs: dict[tuple[str, str], list[Pod]] = defaultdict(list)
        for p in (*self.pending.values(), *self.occupying.values()):
            if self.invalid(p) is None and p.annotations.get(GROUP_NAME):
                self.gangs[(p.namespace, p.annotations[GROUP_NAME])].append(p)

    def priority(self, pod: Pod) -> int:
        """Effective priority: spec.priority, else the named class, else the globalDefault, else 0."""
        if pod.priority is not None:
            return pod.priority
        if pod.priority_class in self.classes:
            return self.classes[pod.priority_class].value
        return self.default

    def never(self, pod: Pod) -> bool:
        """Preemption policy `Never`: the pod's own, else its class's."""
        if pod.preemption_policy is not None:
            return pod.preemption_policy == PREEMPT_NEVER
        cls = self.classes.get(pod.priority_class)
        return cls is not None and cls.preemption_policy == PREEMPT_NEVER

    @staticmethod
    def invalid(pod: Pod) -> str | None:
        """The annotation at fault (SPEC 4 'Invalid annotations'), or None when the pod is fine."""
        a = pod.annotations
        unknown = sorted(
            k for k in a if k.startswith(ANNOTATION_PREFIX) and k not in (GROUP_NAME, MIN_AVAILABLE)
        )
        if unknown:
            return unknown[0]
        if MIN_AVAILABLE in a:
            if GROUP_NAME not in a:
                return MIN_AVAILABLE
            if not re.fullmatch(r"[0-9]+", a[MIN_AVAILABLE]) or int(a[MIN_AVAILABLE]) < 1:
                return MIN_AVAILABLE
        if GROUP_NAME in a and not 0 < len(a[GROUP_NAME]) <= 63:
            return GROUP_NAME
        return None

    def feasible(self, pod: Pod, node_name: str) -> bool:
        """SPEC 2 (v2): an eligible node where the pod may run, by kube-scheduler's filters."""
        node = self.nodes.get(node_name)
        if node is None or node_name not in self.eligible:
            return False
        c = pod.constraints
        for taint in node.taints:
            if taint.effect in ("NoSchedule", "NoExecute") and not any(
                _tolerates(t, taint) for t in c.tolerations
            ):
                return False
        if any(node.labels.get(key) != value for key, value in c.node_selector):
            return False
        if c.affinity is not None and not any(_term_holds(term, node) for term in c.affinity):
            return False
        others = self.others.get(node_name, [])
        for resource, amount in c.requests:
            used = sum(dict(o.constraints.requests).get(resource, 0) for o in others)
            if amount > node.allocatable.get(resource, 0) - used:
                return False
        return "pods" not in node.allocatable or len(others) + 1 <= node.allocatable["pods"]

    def gang_of(self, pod: Pod) -> tuple[str, str] | None:
        """(namespace, group-name) of a valid gang member, else None."""
        if self.invalid(pod) is None and pod.annotations.get(GROUP_NAME):
            return (pod.namespace, pod.annotations[GROUP_NAME])
        return None

    def unit(self, pod: Pod) -> Unit:
        """The unit a pod belongs to: its gang, or itself."""
        gang = self.gang_of(pod)
        return ("gang", *gang) if gang else ("pod", pod.namespace, pod.name)

    def unit_priority(self, pod: Pod) -> int:
        """A unit's priority: gang priority (max over all members) or the pod's own.

        For an occupying pod this is its protected priority as a victim (SPEC 4, SPEC 6).
        """
        gang = self.gang_of(pod)
        if gang is None:
            return self.priority(pod)
        return max(self.priority(m) for m in self.gangs[gang])

    def min_available(self, gang: tuple[str, str], *, of_all: bool = False) -> int:
        """Max of the annotation over pending members (or over all members), missing: 1."""
        members = self.gangs[gang] if of_all else [m for m in self.gangs[gang] if m.key in self.pending]
        return max((int(m.annotations.get(MIN_AVAILABLE, "1")) for m in members), default=1)

    def may_preempt(self, pod: Pod) -> bool:
        """Whether the unit of a pending pod allows preemption (no pending member says `Never`)."""
        gang = self.gang_of(pod)
        members = [pod] if gang is None else [m for m in self.gangs[gang] if m.key in self.pending]
        return not any(self.never(m) for m in members)


def _tolerates(toleration: Toleration, taint: Taint) -> bool:
    """SPEC 2: Kubernetes' matching rules for a toleration and a taint."""
    if toleration.effect not in ("", taint.effect) or toleration.key not in ("", taint.key):
        return False
    if toleration.operator == "Exists":
        return True
    return toleration.operator in ("", "Equal") and toleration.value == taint.value


def _term_holds(term: Term, node: Node) -> bool:
    """SPEC 2: a node selector term: every expression holds (and it has one)."""
    if not term.expressions and not term.fields:
        return False
    for e in term.expressions:
        value = node.labels.get(e.key)
        ok = {
            "In": value is not None and value in e.values,
            "NotIn": value is None or value not in e.values,
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }.get(e.operator)
        if e.operator in ("Gt", "Lt"):
            ok = False
            if value is not None and value.lstrip("-").isdigit() and len(e.values) == 1:
                bound = int(e.values[0])
                ok = int(value) > bound if e.operator == "Gt" else int(value) < bound
        if not ok:
            return False
    return all(
        e.key == "metadata.name" and (node.name in e.values) == (e.operator == "In") for e in term.fields
    )


def _placements(result: Plan) -> dict[str, str]:
    """Pod -> node, for every bind and nomination of a plan."""
    return {b.pod: b.node for b in result.binds} | {n.pod: n.node for n in result.nominations}


# --- the checkers -----------------------------------------------------------------------------


def check_one_pod_per_node(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.1 (and SPEC 6 'two phases'), per eligible node not double-booked in the input.

    Pods that stay (occupying, terminating included, not evicted now) plus binds: at most one
    (nobody is bound next to a pod still terminating). Non-terminating pods that stay, plus binds,
    plus nominations: at most one (a nominee may wait on a node whose victim is terminating).
    """
    view, problems = View(snapshot, scope), list[str]()
    evicted = {e.pod for e in result.evictions}
    skip = double_booked(snapshot, scope.scheduler_name)
    binds: dict[str, list[str]] = defaultdict(list)
    nominations: dict[str, list[str]] = defaultdict(list)
    for b in result.binds:
        binds[b.node].append(b.pod)
    for n in result.nominations:
        nominations[n.node].append(n.pod)
    for node in sorted(view.eligible - skip):
        stay = [p for p in view.on_node.get(node, []) if p.key not in evicted]
        running = [p.key for p in stay if not p.deleting]
        if len(stay) + len(binds[node]) > 1:
            problems.append(
                f"{INV1}: node {node} ends the pass with {[p.key for p in stay]} still on it "
                f"and binds {binds[node]}"
            )
        if len(running) + len(binds[node]) + len(nominations[node]) > 1:
            problems.append(
                f"{INV1}: node {node} ends the pass with {running} occupying it, binds {binds[node]} "
                f"and nominations {nominations[node]}"
            )
    return problems


def check_all_or_nothing(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.2 with SPEC 4 and SPEC 6 'a gang is bound together'.

    For each gang with a pending member: either none of its pending members is placed (bound or
    nominated) or occupying members not evicted now + placed >= min-available; and if any member
    is nominated, none is bound.
    """
    view, problems = View(snapshot, scope), list[str]()
    evicted = {e.pod for e in result.evictions}
    bound = {b.pod for b in result.binds}
    nominated = {n.pod for n in result.nominations}
    for gang, members in sorted(view.gangs.items()):
        pending = [m.key for m in members if m.key in view.pending]
        if not pending:
            continue
        placed = [k for k in pending if k in bound or k in nominated]
        occupying = [m.key for m in members if m.key in view.occupying and m.key not in evicted]
        need = view.min_available(gang)
        if placed and len(occupying) + len(placed) < need:
            problems.append(
                f"{INV2}: gang {gang[0]}/{gang[1]} has {placed} placed and {occupying} occupying, "
                f"below its min-available {need}"
            )
        if any(k in nominated for k in pending) and any(k in bound for k in pending):
            problems.append(
                f"{INV2} (a gang is bound together): gang {gang[0]}/{gang[1]} has members both bound "
                f"{sorted(set(pending) & bound)} and nominated {sorted(set(pending) & nominated)}"
            )
    return problems


def check_evictions_justified(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.3 with SPEC 6: every victim makes room for a nominated unit of strictly higher priority.

    The victim was occupying, managed and not already terminating; its preemptor is nominated now,
    its unit allows preemption and its priority is strictly above the victim's protected priority;
    a pod of the preemptor's unit is nominated to the victim's node, or the victim is a member of a
    running gang evicted whole for gang integrity and one of those members' nodes got such a nominee.
    """
    view, problems = View(snapshot, scope), list[str]()
    evicted = {e.pod: e for e in result.evictions}
    nominee_units: dict[str, set[Unit]] = defaultdict(set)  # node -> units nominated to it
    for n in result.nominations:
        if n.pod in view.pending:
            nominee_units[n.node].add(view.unit(view.pending[n.pod]))
    nominated = {n.pod for n in result.nominations}
    for e in result.evictions:
        victim = view.occupying.get(e.pod)
        if victim is None or victim.deleting:
            problems.append(
                f"{INV3}: {e.pod} is evicted but is not an occupying, non-terminating managed pod"
            )
            continue
        if e.node != victim.node_name:
            problems.append(f"{INV3}: {e.pod} is evicted from {e.node} but runs on {victim.node_name}")
        preemptor = view.pending.get(e.preemptor)
        if preemptor is None or e.preemptor not in nominated:
            problems.append(f"{INV3}: {e.pod} is evicted for {e.preemptor}, which is not nominated this pass")
            continue
        if view.unit_priority(preemptor) <= view.unit_priority(victim):
            problems.append(
                f"{INV3}: {e.pod} (protected priority {view.unit_priority(victim)}) is evicted for "
                f"{e.preemptor} (unit priority {view.unit_priority(preemptor)}), not strictly higher"
            )
        if not view.may_preempt(preemptor):
            problems.append(f"{INV3}: {e.pod} is evicted for {e.preemptor}, whose unit has policy Never")
        unit = view.unit(preemptor)
        if unit in nominee_units[victim.node_name] and victim.node_name in view.eligible:
            continue
        gang = view.gang_of(victim)
        freed = [
            m.node_name for m in (view.gangs[gang] if gang else []) if m.key in evicted and m.key != e.pod
        ]
        if not any(unit in nominee_units[node] and node in view.eligible for node in freed):
            problems.append(
                f"{INV3}: {e.pod} on {victim.node_name} is evicted, but no pod of {e.preemptor}'s unit "
                f"is nominated to its node (nor to the node of a gang member evicted with it)"
            )
    return problems


def check_feasible(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.7: binds and nominations go to nodes feasible for their pod; an eviction frees a node
    feasible for the nominee of the preemptor's unit placed there (SPEC 9.3 checks that one is)."""
    view, problems = View(snapshot, scope), list[str]()
    for pod, node in sorted(_placements(result).items()):
        placed = view.pending.get(pod)
        if placed is not None and not view.feasible(placed, node):
            problems.append(f"{INV7}: {pod} is placed on {node}, which is not feasible for it")
    nominees = {n.node: n.pod for n in result.nominations}
    for e in result.evictions:
        nominee = view.pending.get(nominees.get(e.node, ""))
        if nominee is not None and not view.feasible(nominee, e.node):
            problems.append(
                f"{INV7}: {e.pod} is evicted from {e.node} for {nominee.key}, which cannot run there"
            )
    return problems


def check_gang_integrity(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 6: if a running gang loses a member, it keeps its min-available or loses every member."""
    view, problems = View(snapshot, scope), list[str]()
    evicted = {e.pod for e in result.evictions}
    for gang, members in sorted(view.gangs.items()):
        occupying = [m for m in members if m.key in view.occupying]
        gone = [m.key for m in occupying if m.key in evicted]
        if not gone:
            continue
        left = [m.key for m in occupying if m.key not in evicted]
        running = [m.key for m in occupying if m.key not in evicted and not m.deleting]
        need = view.min_available(gang, of_all=True)
        if running and len(left) < need:
            problems.append(
                f"{INTEGRITY}: gang {gang[0]}/{gang[1]} loses {gone} and keeps {left}, "
                f"below its min-available {need}"
            )
    return problems


def check_reservations(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 6: a pending pod's `nominatedNodeName` reserves that node against units not strictly higher.

    Counted as a reservation: a valid pending pod nominated to an eligible node, not placed elsewhere
    by this plan, whose gang (if any) has enough members to ever reach min-available (SPEC does not
    say whether a gang that must wait keeps its nodes; that case is left out). Any other unit bound or
    nominated to that node must have a strictly higher priority (or, holding it too, an equal one).
    """
    view, problems = View(snapshot, scope), list[str]()
    placed = _placements(result)
    holders: dict[str, list[Pod]] = defaultdict(list)
    for key, pod in sorted(view.pending.items()):
        if not pod.nominated_node or pod.nominated_node not in view.eligible or view.invalid(pod) is not None:
            continue
        if key in placed and placed[key] != pod.nominated_node:
            continue
        gang = view.gang_of(pod)
        if gang is not None and len(view.gangs[gang]) < view.min_available(gang):
            continue
        if not view.feasible(pod, pod.nominated_node):
            continue  # SPEC 6: it gives back a node it can no longer run on
        holders[pod.nominated_node].append(pod)
    for key, node in sorted(placed.items()):
        user = view.pending.get(key)
        if user is None:
            continue
        # A holder may lose its node to another holder of equal priority (two pods nominated to
        # one node: one of them must yield), never to a unit that does not hold it.
        own = any(view.unit(h) == view.unit(user) for h in holders.get(node, []))
        for holder in holders.get(node, []):
            if view.unit(holder) == view.unit(user):
                continue
            if view.unit_priority(user) < view.unit_priority(holder) or (
                not own and view.unit_priority(user) == view.unit_priority(holder)
            ):
                problems.append(
                    f"{RESERVED}: {key} (unit priority {view.unit_priority(user)}) is placed on {node}, "
                    f"reserved for {holder.key} (unit priority {view.unit_priority(holder)})"
                )
    return problems


def check_accounted(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """Each pending managed pod appears exactly once in binds, nominations or unschedulable (with a
    reason; an invalid pod's reason names the annotation), only they do, evictions name occupying
    managed pods, placements go to eligible nodes, and every list is sorted by pod.
    """
    view, problems = View(snapshot, scope), list[str]()
    seen: dict[str, int] = defaultdict(int)
    for key in [*(b.pod for b in result.binds), *(n.pod for n in result.nominations)]:
        seen[key] += 1
    for u in result.unschedulable:
        seen[u.pod] += 1
        if not u.reason.strip():
            problems.append(f"{ACCOUNTED}: {u.pod} is unschedulable with an empty reason")
    for key in sorted(view.pending):
        if seen[key] != 1:
            problems.append(f"{ACCOUNTED}: pending pod {key} appears {seen[key]} times in the plan")
    for key in sorted(set(seen) - set(view.pending)):
        problems.append(f"{ACCOUNTED}: {key} is in the plan but is not a pending managed pod in scope")
    for e in result.evictions:
        if e.pod not in view.occupying:
            problems.append(f"{ACCOUNTED}: evicted {e.pod} is not an occupying managed pod in scope")
    for pod, node in sorted(_placements(result).items()):
        if node not in view.eligible:
            problems.append(f"{ACCOUNTED}: {pod} is placed on {node}, which is not an eligible node")
    for u in result.unschedulable:
        maybe = view.pending.get(u.pod)
        bad = view.invalid(maybe) if maybe else None
        if bad is not None and maybe is not None:
            value = maybe.annotations.get(bad, "")[:64]  # a long value is shown cut
            if bad.rsplit("/", 1)[-1] not in u.reason or value not in u.reason:
                problems.append(
                    f"SPEC 4: invalid {u.pod}'s reason {u.reason!r} must name {bad} and its value {value!r}"
                )
    for key, placed in view.pending.items():
        if view.invalid(placed) is not None and key in _placements(result):
            problems.append(f"SPEC 4: {key} has invalid annotations but is placed")
    for name, items in (
        ("binds", [b.pod for b in result.binds]),
        ("nominations", [n.pod for n in result.nominations]),
        ("evictions", [e.pod for e in result.evictions]),
        ("unschedulable", [u.pod for u in result.unschedulable]),
    ):
        if items != sorted(items):
            problems.append(f"SPEC 10: the plan's {name} are not sorted by pod: {items}")
    return problems


def check_work_conserving(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.6: no valid pending singleton is left unschedulable while a free eligible node exists.

    A node is free after the plan when it is eligible, holds no occupying managed pod (evicted and
    terminating ones still hold it), is not bound or nominated to in the plan, and is not named by
    the `nominatedNodeName` of any pending pod that the plan did not place elsewhere (a reservation
    the plan may keep: only a unit of strictly higher priority could take it, and whether it must
    is SPEC 6's business, not this invariant's). What else could make a free node unusable to a
    singleton: nothing in SPEC (no resources, taints or affinity; any priority and any preemption
    policy may take a free node). Exempt: gang members (a gang may not fit whole), invalid pods,
    and a pod whose own nomination names an eligible node (it may wait there for its victim).
    """
    view, problems = View(snapshot, scope), list[str]()
    placed = _placements(result)
    taken = set(placed.values())
    reserved = {p.nominated_node for p in view.pending.values() if p.nominated_node and p.key not in placed}
    free = sorted(
        n for n in view.eligible if not view.on_node.get(n) and n not in taken and n not in reserved
    )
    if not free:
        return problems
    for u in result.unschedulable:
        pod = view.pending.get(u.pod)
        if pod is None or view.invalid(pod) is not None or GROUP_NAME in pod.annotations:
            continue
        if pod.nominated_node in view.eligible:
            continue
        fits = [n for n in free if view.feasible(pod, n)]
        if fits:
            problems.append(
                f"{INV6}: {u.pod} stays pending ({u.reason!r}) while feasible node(s) {fits} are free"
            )
    return problems


def apply(snapshot: Snapshot, result: Plan) -> Snapshot:
    """The cluster after a plan is applied and its victims are gone.

    Evicted pods are removed; nominees get `nominatedNodeName`, other pending pods lose theirs (the
    shell clears it); bound pods get `nodeName` and stay phase Pending (bound but not running).
    """
    evicted = {e.pod for e in result.evictions}
    nominated = {n.pod: n.node for n in result.nominations}
    bound = {b.pod: b.node for b in result.binds}
    pods = []
    for pod in snapshot.pods:
        if pod.key in bound:
            pods.append(replace(pod, node_name=bound[pod.key], nominated_node=""))
        elif pod.key in nominated:
            pods.append(replace(pod, nominated_node=nominated[pod.key]))
        elif pod.key not in evicted:
            # The shell clears a nomination the plan no longer makes (`nomination_cleared`).
            pods.append(replace(pod, nominated_node="") if pod.nominated_node and not pod.node_name else pod)
    return replace(snapshot, pods=tuple(pods))


def check_replan(snapshot: Snapshot, first: Plan, second: Plan, scope: Settings) -> list[str]:
    """SPEC 9.5: `second` is the plan for `apply(snapshot, first)`.

    It binds, to their nominated nodes, the nominees of `first` whose unit's nominated nodes are
    all free now (a gang's nominees together), and it evicts nothing.

    Two exceptions come from SPEC 6 itself. A reservation the first plan dropped has held for that
    pass only: the second may preempt on its node (unless its holder, strictly higher than the
    preemptor, was placed elsewhere in the first pass: then the first pass knew the node was free
    to preempt on, in time). And "a unit of strictly higher priority (which
    then takes over the reservation)" may take a nominee's node in the second pass (a pod with policy Never,
    say, that could not preempt in the first pass but may use a free node). The nominee it displaces
    is then a pending unit like any other, and may preempt again: its evictions are allowed.
    """
    view, after = View(snapshot, scope), View(apply(snapshot, first), scope)
    units: dict[Unit, dict[str, str]] = defaultdict(dict)
    for n in first.nominations:
        if n.pod in view.pending:
            units[view.unit(view.pending[n.pod])][n.pod] = n.node
    bound = {b.pod: b.node for b in second.binds}
    taken_by = {node: pod for pod, node in _placements(second).items()}
    problems, displaced = [], set()
    for unit, nominees in sorted(units.items()):
        nodes = set(nominees.values())
        priority = after.unit_priority(after.pending[next(iter(nominees))])
        if any(
            node in taken_by
            and taken_by[node] not in nominees
            and taken_by[node] in after.pending
            and after.unit_priority(after.pending[taken_by[node]]) > priority
            for node in nodes
        ):
            displaced.add(unit)
            continue
        if any(after.on_node.get(node) or node not in after.eligible for node in nodes):
            continue
        for pod, node in sorted(nominees.items()):
            if bound.get(pod) != node:
                problems.append(
                    f"{INV5}: nominee {pod} of {unit[1]}/{unit[2]} is not bound to {node} once all its "
                    f"unit's nodes {sorted(nodes)} are free (the second pass binds it to "
                    f"{bound.get(pod)!r})"
                )
    # A node reserved in the snapshot for a nominee that the first plan no longer nominates there
    # stayed reserved for the first pass (SPEC 6); the shell then clears that nomination, so the
    # second pass may preempt on it: that eviction was waiting for the reservation to end.
    # Not when the holder was of strictly higher priority and placed elsewhere by the first pass:
    # it went before the preemptor, so its old node was known to be unneeded in time (no order
    # between equals is involved): the first pass should have preempted there already.
    kept = {n.node for n in first.nominations} | {b.node for b in first.binds}
    placed = _placements(first)
    holders: dict[str, list[Pod]] = defaultdict(list)
    for p in view.pending.values():
        if p.nominated_node and p.nominated_node not in kept:
            holders[p.nominated_node].append(p)
    # A running gang evicted whole goes with the node that needed it: if that node's reservation
    # was dropped, so is every member's eviction excused.
    evicted_nodes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in second.evictions:
        victim = after.by_key.get(e.pod)
        if victim is not None and (gang := after.gang_of(victim)) is not None:
            evicted_nodes[gang].add(e.node)
    for e in second.evictions:
        preemptor = after.pending.get(e.preemptor)
        victim = after.by_key.get(e.pod)
        gang = after.gang_of(victim) if victim is not None else None
        nodes = evicted_nodes[gang] if gang is not None else {e.node}
        if preemptor is not None and any(
            not (h.key in placed and view.unit_priority(h) > after.unit_priority(preemptor))
            for node in nodes
            for h in holders.get(node, [])
        ):
            continue
        if preemptor is None or after.unit(preemptor) not in displaced:
            problems.append(f"{INV5}: the second pass evicts {e.pod} for {e.preemptor}")
    return problems


PASS_CHECKS: tuple[Callable[[Snapshot, Plan, Settings], list[str]], ...] = (
    check_one_pod_per_node,
    check_all_or_nothing,
    check_evictions_justified,
    check_gang_integrity,
    check_reservations,
    check_work_conserving,
    check_accounted,
    check_feasible,
)


def check_pass(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """Every single-pass check (9.1, 9.2, 9.3, 9.6, gang integrity, reservations, accounting) at once."""
    return [problem for check in PASS_CHECKS for problem in check(snapshot, result, scope)]


# --- the property tests -------------------------------------------------------------------------

# INVARIANT_EXAMPLES=5000 makes a deeper hunt of the same properties (the default stays fast).
INVARIANTS = settings(
    max_examples=int(os.environ.get("INVARIANT_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _holds(problems: Iterable[str], snapshot: Snapshot, result: Plan) -> None:
    """Assert no violation; the message gives the invariant, the plan and the cluster, compactly."""
    found = list(problems)
    assert not found, "\n".join(
        [*found[:10], "plan:", *_plan_lines(result), "cluster planned:", describe(snapshot)]
    )


def _plan_lines(result: Plan) -> list[str]:
    return [
        *(f"  bind {b.pod} -> {b.node}" for b in result.binds),
        *(f"  nominate {n.pod} -> {n.node} waiting for {list(n.waiting_for)}" for n in result.nominations),
        *(f"  evict {e.pod} from {e.node} for {e.preemptor}" for e in result.evictions),
        *(f"  unschedulable {u.pod}: {u.reason}" for u in result.unschedulable),
    ]


@INVARIANTS
@given(snapshots(double_booking=True), scopes())
def test_no_eligible_node_ends_a_pass_with_two_managed_pods(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_one_pod_per_node(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(), scopes())
def test_no_gang_is_partially_placed(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_all_or_nothing(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(), scopes())
def test_no_pod_is_evicted_without_a_strictly_higher_nominee(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_evictions_justified(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(), scopes())
def test_no_running_gang_is_left_broken(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_gang_integrity(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(), scopes())
def test_a_nominated_node_is_reserved(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_reservations(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(double_booking=True), scopes(), st.data())
def test_the_plan_does_not_depend_on_input_order(
    snapshot: Snapshot, scope: Settings, data: st.DataObject
) -> None:
    shuffled = Snapshot(
        nodes=tuple(data.draw(st.permutations(snapshot.nodes), label="nodes")),
        pods=tuple(data.draw(st.permutations(snapshot.pods), label="pods")),
        priority_classes=tuple(data.draw(st.permutations(snapshot.priority_classes), label="classes")),
        now=snapshot.now,
    )
    first, second = plan(snapshot, settings=scope), plan(shuffled, settings=scope)
    assert first == second, "\n".join(
        [
            INV4,
            "in the given order:",
            *_plan_lines(first),
            "shuffled:",
            *_plan_lines(second),
            describe(snapshot),
        ]
    )


@INVARIANTS
@given(snapshots(), scopes())
def test_applying_a_plan_and_planning_again_binds_the_nominees(snapshot: Snapshot, scope: Settings) -> None:
    first = plan(snapshot, settings=scope)
    _holds(check_pass(snapshot, first, scope), snapshot, first)  # a broken first pass is the cause
    after = apply(snapshot, first)
    second = plan(after, settings=scope)
    _holds(check_replan(snapshot, first, second, scope), after, second)
    _holds(check_pass(after, second, scope), after, second)


@INVARIANTS
@given(snapshots(), scopes())
def test_nothing_is_placed_or_evicted_where_its_pod_could_not_run(
    snapshot: Snapshot, scope: Settings
) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_feasible(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(double_booking=True), scopes())
def test_work_conserving(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_work_conserving(snapshot, result, scope), snapshot, result)


@INVARIANTS
@given(snapshots(double_booking=True), scopes())
def test_every_pending_pod_is_accounted_for_and_nothing_else(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _holds(check_accounted(snapshot, result, scope), snapshot, result)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(large_snapshots(double_booking=True), scopes())
def test_every_invariant_on_large_clusters(snapshot: Snapshot, scope: Settings) -> None:
    """Hundreds of nodes, up to a thousand pods: every invariant on one cluster (seeded, no shrinking)."""
    result = plan(snapshot, settings=scope)
    _holds(check_pass(snapshot, result, scope), snapshot, result)
    reordered = replace(snapshot, nodes=snapshot.nodes[::-1], pods=snapshot.pods[::-1])
    assert plan(reordered, settings=scope) == result, INV4
    after = apply(snapshot, result)
    second = plan(after, settings=scope)
    _holds(check_replan(snapshot, result, second, scope), after, second)
