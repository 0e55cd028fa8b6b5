"""Why a pod waits, in kube-scheduler's words where they fit (SPEC 7).

`0/5 nodes are available: 3 node(s) hold a pod of equal or higher priority, 2 node(s) were not
ready.` counts every node of the cluster once, by the first thing that keeps it from the pod.
Once the nodes are full, thousands of waiting units share one text: texts are made once per
distinct set of counts and shared.
"""

from __future__ import annotations

from custom_scheduler.planner.nodes import Eligibility, Nodes, NodeState
from custom_scheduler.planner.units import Gang, Unit

S = NodeState


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

    def breakdown(self, priority: int, *, lower_note: str | None, own: int = 0) -> str:
        """Why nodes cannot be had by a unit of this priority, node counts by cause."""
        nodes = self.nodes
        moment = (nodes.version, priority, lower_note, own)
        if (text := self._texts.get(moment)) is not None:
            return text
        lower = nodes.count_running_below(priority)
        held = nodes.count(S.BOUND, S.RUNNING) - lower
        reserved = nodes.reserved() + nodes.count(S.NOMINATED) - own
        terminating, stuck = nodes.count(S.TERMINATING), nodes.count(S.STUCK)
        key = ("breakdown", lower, held, reserved, terminating, stuck, lower_note)
        if (text := self._texts.get(key)) is not None:
            self._texts[moment] = text
            return text
        e = self.eligibility
        counts = [
            (e.not_selected, "didn't match the scheduler's node selector"),
            (e.not_ready, "were not ready"),
            (e.cordoned, "were unschedulable"),
            (held, "hold a pod of equal or higher priority"),
            (reserved, "are reserved for nominated pods"),
            (terminating, "hold a terminating pod"),
            (stuck, f"hold a pod still terminating {self.stuck_after:g}s after its grace period"),
        ]
        if lower_note is not None:
            counts.append((lower, f"hold a pod of lower priority, {lower_note}"))
        counts = [(n, why) for n, why in counts if n > 0]
        counts.sort(key=lambda c: (-c[0], c[1]))
        text = self._texts[key] = self._texts[moment] = ", ".join(f"{n} node(s) {why}" for n, why in counts)
        return text

    def unit(self, unit: Unit, *, can_have: int, own: int) -> str:
        """Why a unit stays pending; `can_have` counts the nodes it could get, its own included."""
        lower_note = None if unit.can_preempt else "and preemptionPolicy is Never"
        detail = self.breakdown(unit.priority, lower_note=lower_note, own=own)
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

    def beyond_quorum(self, unit: Unit) -> str:
        """A gang member left over once the gang's min-available is placed."""
        detail = self.breakdown(
            unit.priority, lower_note="and members beyond the gang's min-available do not preempt"
        )
        return f"0/{self.eligibility.total} nodes are available: {detail}."
