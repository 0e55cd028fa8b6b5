"""`custom-scheduler status`: the scheduler's view of a cluster at a glance, as a table or JSON.

Operators of other gang schedulers have `kubectl get podgroups`; this is ours. From one snapshot
(a live cluster's or a file) and the plan a pass would make of it, it shows each gang (members
bound and pending of its min-available, since when it waits, why), each pod that waits, is
nominated, would be bound by the next pass or is gated, with its reason, and every node by state:
free, ours, reserved, or not eligible and why. Reasons are the plan's, so they are what the
scheduler says (or would say, if it is not running: a pod the next pass would bind that stays
unbound says the scheduler is not running).

Pure: data in, text out; the command line reads the snapshot and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from custom_scheduler.model import GROUP_NAME, Plan, Pod, Snapshot
from custom_scheduler.planner import plan as plan_pass
from custom_scheduler.planner.priority import PriorityTable, effective_priority
from custom_scheduler.planner.units import Gang, Workload
from custom_scheduler.settings import Settings

# Pod states, in the order the table lists them.
NOMINATED, BINDS, WAITING, GATED = "nominated", "binds next pass", "waiting", "gated"
_POD_ORDER = {NOMINATED: 0, BINDS: 1, WAITING: 2, GATED: 3}
# Node states, in the order the table lists them.
FREE, OURS, RESERVED, NOT_ELIGIBLE = "free", "ours", "reserved", "not eligible"
_NODE_ORDER = {RESERVED: 0, OURS: 1, FREE: 2, NOT_ELIGIBLE: 3}
GATED_REASON = "scheduling gates (spec.schedulingGates): not scheduled until they are removed"
BINDS_REASON = "fits on node {node}: the next pass binds it (if it stays so, is the scheduler running?)"


@dataclass(frozen=True, slots=True)
class GangRow:
    """A gang: its members bound and pending of its min-available, since when it waits, and why."""

    gang: str
    bound: int
    pending: int
    min_available: int
    waiting_since: float  # its oldest pending member's creation (epoch seconds); 0: none pending
    reason: str


@dataclass(frozen=True, slots=True)
class PodRow:
    """A pod of ours that is not running: its state, its node (nominated or about to be bound), why."""

    pod: str
    state: str
    gang: str
    priority: int
    node: str
    waiting_since: float  # its creation (epoch seconds)
    reason: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node: free, ours (our pods on it), reserved (for a nominee), or not eligible, and why."""

    node: str
    state: str
    pods: tuple[str, ...]
    detail: str


@dataclass(frozen=True, slots=True)
class Status:
    """Everything `status` shows, as of `now`."""

    scheduler: str
    namespace: str | None
    now: float
    gangs: tuple[GangRow, ...]
    pods: tuple[PodRow, ...]
    nodes: tuple[NodeRow, ...]

    def to_json(self) -> dict[str, Any]:
        """The status as `status -o json` prints it: times in RFC 3339, counts in `summary`."""
        return {
            "scheduler": self.scheduler,
            "namespace": self.namespace,
            "now": rfc3339(self.now),
            "summary": self.summary(),
            "gangs": [{**asdict(g), "waiting_since": rfc3339(g.waiting_since)} for g in self.gangs],
            "pods": [{**asdict(p), "waiting_since": rfc3339(p.waiting_since)} for p in self.pods],
            "nodes": [{**asdict(n), "pods": list(n.pods)} for n in self.nodes],
        }

    def summary(self) -> dict[str, dict[str, int]]:
        """How many nodes and pods are in each state, and how many gangs wait."""
        nodes = {state: sum(1 for n in self.nodes if n.state == state) for state in _NODE_ORDER}
        pods = {state: sum(1 for p in self.pods if p.state == state) for state in _POD_ORDER}
        waiting = sum(1 for g in self.gangs if g.pending)
        return {"nodes": nodes, "pods": pods, "gangs": {"waiting": waiting, "all": len(self.gangs)}}


def rfc3339(seconds: float) -> str | None:
    """Epoch seconds as RFC 3339 in UTC, to the second (None for 0: unknown)."""
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(snapshot: Snapshot, *, settings: Settings, result: Plan | None = None) -> Status:
    """The status of a snapshot (as of its `now`), with the reasons of `result` (else a fresh plan)."""
    result = result if result is not None else plan_pass(snapshot, settings=settings)
    table = PriorityTable.of(snapshot.priority_classes)
    workload = Workload.of(snapshot.pods, settings, table)
    reasons = {u.pod: u.reason for u in result.unschedulable}
    nominations = {n.pod: n for n in result.nominations}
    binds = {b.pod: b.node for b in result.binds}

    def said(pod: str) -> tuple[str, str, str]:
        """(state, node, reason) of a pending pod, as the plan sees it."""
        if pod in nominations:
            n = nominations[pod]
            return NOMINATED, n.node, n.message
        if pod in binds:
            return BINDS, binds[pod], BINDS_REASON.format(node=binds[pod])
        return WAITING, "", reasons.get(pod, "")

    pod_rows = []
    for pod in snapshot.pods:
        if not (_ours(pod, settings) and _pending_or_gated(pod)):
            continue
        state, node, reason = (GATED, "", GATED_REASON) if pod.gated else said(pod.key)
        gang = pod.annotations.get(GROUP_NAME, "")
        priority = effective_priority(pod, table)
        pod_rows.append(PodRow(pod.key, state, gang, priority, node, pod.creation, reason))
    pod_rows.sort(key=lambda r: (_POD_ORDER[r.state], r.waiting_since, r.pod))
    gangs = {id(g): g for g in workload.gang_of.values()}.values()
    gang_rows = tuple(sorted((_gang_row(g, said) for g in gangs), key=lambda g: (not g.pending, g.gang)))
    return Status(
        scheduler=settings.scheduler_name,
        namespace=settings.namespace,
        now=snapshot.now,
        gangs=gang_rows,
        pods=tuple(pod_rows),
        nodes=tuple(_node_rows(snapshot, settings, workload)),
    )


def _ours(pod: Pod, settings: Settings) -> bool:
    return pod.scheduler_name == settings.scheduler_name and settings.namespace in (None, pod.namespace)


def _pending_or_gated(pod: Pod) -> bool:
    return not pod.node_name and pod.phase == "Pending" and not pod.deleting


def _gang_row(gang: Gang, said: Callable[[str], tuple[str, str, str]]) -> GangRow:
    pending = sorted(gang.pending, key=lambda p: (p.creation, p.name))
    if pending:
        _, _, reason = said(pending[0].key)
        return GangRow(
            gang.label, len(gang.occupying), len(pending), gang.min_pending, pending[0].creation, reason
        )
    return GangRow(gang.label, len(gang.occupying), 0, gang.min_all, 0.0, "running")


def _node_rows(snapshot: Snapshot, settings: Settings, workload: Workload) -> Iterable[NodeRow]:
    """Every node once, by name (a snapshot may name one twice), with its state."""
    nominees: dict[str, list[str]] = {}
    for pod in snapshot.pods:
        if pod.nominated_node and _ours(pod, settings) and _pending_or_gated(pod):
            nominees.setdefault(pod.nominated_node, []).append(pod.key)
    rows = []
    for node in {n.name: n for n in sorted(snapshot.nodes, key=lambda n: n.name)}.values():
        occupants = workload.occupants.get(node.name, [])
        on_it = tuple(sorted(p.key for p in occupants))
        leaving = sorted(p.key for p in occupants if p.deleting)
        going = f"{', '.join(leaving)} terminating" if leaving else ""
        if settings.node_selector.requirements and not settings.node_selector.matches(node.labels):
            rows.append(NodeRow(node.name, NOT_ELIGIBLE, on_it, "not selected by --node-selector"))
        elif not node.ready:
            rows.append(NodeRow(node.name, NOT_ELIGIBLE, on_it, "not Ready"))
        elif node.unschedulable:
            rows.append(NodeRow(node.name, NOT_ELIGIBLE, on_it, "cordoned (spec.unschedulable)"))
        elif node.name in nominees:
            held = f"for {', '.join(sorted(nominees[node.name]))}"
            rows.append(NodeRow(node.name, RESERVED, on_it, f"{held}; {going}" if going else held))
        elif occupants:
            rows.append(NodeRow(node.name, OURS, on_it, going))
        else:
            rows.append(NodeRow(node.name, FREE, (), ""))
    return sorted(rows, key=lambda r: (_NODE_ORDER[r.state], r.node))


def age(seconds: float, now: float) -> str:
    """How long since `seconds`, as kubectl shows ages: 45s, 5m12s, 3h2m, 2d3h ("-": unknown)."""
    if not seconds or not now:
        return "-"
    total = max(int(now - seconds), 0)
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 60:
        return f"{total}s"
    if hours < 1:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if days < 1:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns as `kubectl get` lays them out: upper-case headers, padded, three spaces apart."""
    cells = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def render(status: Status) -> str:
    """The status as tables people read at a glance: a summary line, then gangs, pods and nodes."""
    summary = status.summary()
    nodes = ", ".join(f"{count} {state}" for state, count in summary["nodes"].items() if count)
    pods = ", ".join(f"{count} {state}" for state, count in summary["pods"].items() if count)
    gangs = summary["gangs"]
    scope = status.namespace or "all namespaces"
    lines = [
        f"scheduler {status.scheduler} ({scope}): nodes: {nodes or 'none'}; "
        f"pods not running: {pods or 'none'}; gangs waiting: {gangs['waiting']} of {gangs['all']}"
    ]
    now = status.now
    if status.gangs:
        lines += [
            "",
            *_table(
                ("GANG", "BOUND", "PENDING", "MIN-AVAILABLE", "WAITING", "REASON"),
                (
                    (
                        g.gang,
                        str(g.bound),
                        str(g.pending),
                        str(g.min_available),
                        age(g.waiting_since, now),
                        g.reason,
                    )
                    for g in status.gangs
                ),
            ),
        ]
    if status.pods:
        lines += [
            "",
            *_table(
                ("POD", "STATE", "GANG", "PRIORITY", "NODE", "WAITING", "REASON"),
                (
                    (
                        p.pod,
                        p.state,
                        p.gang or "-",
                        str(p.priority),
                        p.node or "-",
                        age(p.waiting_since, now),
                        p.reason,
                    )
                    for p in status.pods
                ),
            ),
        ]
    if status.nodes:
        lines += [
            "",
            *_table(
                ("NODE", "STATE", "PODS", "DETAIL"),
                ((n.node, n.state, ", ".join(n.pods) or "-", n.detail or "-") for n in status.nodes),
            ),
        ]
    return "\n".join(lines) + "\n"
