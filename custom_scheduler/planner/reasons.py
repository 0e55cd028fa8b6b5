"""Why a pod waits, in kube-scheduler's words where they fit (SPEC 2 and 7).

`0/6 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: },
2 node(s) didn't match Pod's node affinity/selector, 1 Insufficient nvidia.com/gpu, 2 node(s) hold
a pod of equal or higher priority.` counts every node of the cluster once (a node short of two
resources under each), by the first thing that keeps it from the pod, in the order they are
judged: eligibility, the filters, then what this pass has made of the nodes the pod may use.
Once the nodes are full, thousands of waiting units share one text: texts are made once per
distinct set of counts and shared.
"""

from __future__ import annotations

from typing import NamedTuple

from custom_scheduler.planner.nodes import Eligibility, Nodes, NodeState
from custom_scheduler.planner.units import Gang, Unit

S = NodeState

NO_NODES = "no nodes available to schedule pods"  # kube-scheduler's ErrNoNodesAvailable, word for word
HELD = "hold a pod of equal or higher priority"
RESERVED = "are reserved for nominated pods"
TERMINATING = "hold a terminating pod"


class Scope(NamedTuple):
    """The nodes a unit may use (None: every eligible node), and why the others are not for it."""

    within: int | None
    unfit: tuple[tuple[str, int], ...]  # (kube-scheduler's reason, how many nodes), filter order
    key: object  # the same for units that may use the same nodes for the same reasons


class Reasons:
    """Texts for units left pending, from the node counts of the moment."""

    def __init__(self, eligibility: Eligibility, nodes: Nodes, *, stuck_after: float) -> None:
        self.eligibility = eligibility
        self.nodes = nodes
        self.stuck_after = stuck_after
        self._texts: dict[tuple[object, ...], str] = {}

    @staticmethod
    def quorum(gang: Gang) -> str:
        """A gang with fewer members than its min-available (SPEC 4)."""
        return (
            f"gang {gang.label}: {gang.occupying_now + len(gang.pending)} of "
            f"{gang.min_pending} required members exist"
        )

    def breakdown(self, priority: int, scope: Scope, *, lower_note: str | None, own: int = 0) -> str:
        """Why nodes cannot be had by a unit of this priority, node counts by cause."""
        nodes = self.nodes
        moment = (nodes.version, priority, scope.key, lower_note, own)
        if (text := self._texts.get(moment)) is not None:
            return text
        within = scope.within
        lower = nodes.count_running_below(priority, within)
        held = nodes.count(S.BOUND, S.RUNNING, within=within) - lower
        reserved = nodes.reserved(within) + nodes.count(S.NOMINATED, within=within) - own
        terminating = nodes.count(S.TERMINATING, within=within)
        stuck = nodes.count(S.STUCK, within=within)
        key = ("breakdown", scope.unfit, lower, held, reserved, terminating, stuck, lower_note)
        if (text := self._texts.get(key)) is not None:
            self._texts[moment] = text
            return text
        e = self.eligibility
        counts = [
            (e.not_selected, "node(s) didn't match the scheduler's node selector"),
            (e.not_ready, "node(s) were not ready"),
            (e.cordoned, "node(s) were unschedulable"),
            *((count, why) for why, count in scope.unfit),
            (held, f"node(s) {HELD}"),
            (reserved, f"node(s) {RESERVED}"),
            (terminating, f"node(s) {TERMINATING}"),
            (stuck, f"node(s) hold a pod still terminating {self.stuck_after:g}s after its grace period"),
        ]
        if lower_note is not None:
            counts.append((lower, f"node(s) hold a pod of lower priority, {lower_note}"))
        text = ", ".join(f"{n} {why}" for n, why in counts if n > 0)
        self._texts[key] = self._texts[moment] = text
        return text

    def unit(self, unit: Unit, scope: Scope, *, can_have: int, own: int) -> str:
        """Why a unit stays pending; `can_have` counts the nodes it could get, its own included."""
        lower_note = None if unit.can_preempt else "and preemptionPolicy is Never"
        detail = self.breakdown(unit.priority, scope, lower_note=lower_note, own=own)
        if not self.eligibility.total:  # a cluster with no nodes at all
            return (
                NO_NODES
                if unit.gang is None
                else f"gang {unit.gang.label} needs {unit.need} nodes: {NO_NODES}"
            )
        if unit.gang is None:
            key: tuple[object, ...] = ("single", detail)
            if (text := self._texts.get(key)) is None:
                text = self._texts[key] = f"0/{self.eligibility.total} nodes are available" + (
                    f": {detail}." if detail else "."
                )
            return text
        need = unit.need
        text = f"gang {unit.gang.label} needs {need} nodes, {min(can_have, need - 1)} can be had"
        return f"{text}: {detail}." if detail else text

    def beyond_quorum(self, unit: Unit, scope: Scope) -> str:
        """A gang member left over once the gang's min-available is placed."""
        detail = self.breakdown(
            unit.priority, scope, lower_note="and members beyond the gang's min-available do not preempt"
        )
        return f"0/{self.eligibility.total} nodes are available: {detail}."
