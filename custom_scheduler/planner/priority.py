"""Priority: what a pod is worth, and whether it may evict others for it (SPEC section 3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from custom_scheduler.model import PREEMPT_LOWER, Pod, PriorityClass


@dataclass(frozen=True, slots=True)
class PriorityTable:
    """The priority classes of a snapshot, indexed for lookups."""

    by_name: dict[str, PriorityClass]
    default: PriorityClass | None

    @classmethod
    def of(cls, classes: Iterable[PriorityClass]) -> PriorityTable:
        """Index classes by name; the global default is the highest-valued one marked so."""
        ordered = sorted(classes, key=lambda c: (c.name, c.value, c.global_default))
        by_name = {c.name: c for c in ordered}
        defaults = [c for c in by_name.values() if c.global_default]
        default = max(defaults, key=lambda c: (c.value, c.name)) if defaults else None
        return cls(by_name, default)


def effective_priority(pod: Pod, table: PriorityTable) -> int:
    """spec.priority; else the named class's value; else the global default's; else 0."""
    if pod.priority is not None:
        return pod.priority
    named = table.by_name.get(pod.priority_class) if pod.priority_class else None
    if named is not None:
        return named.value
    return table.default.value if table.default is not None else 0


def preemption_policy(pod: Pod, table: PriorityTable) -> str:
    """spec.preemptionPolicy; else its class's (the global default's when it names none)."""
    if pod.preemption_policy:
        return pod.preemption_policy
    named = table.by_name.get(pod.priority_class) if pod.priority_class else table.default
    if named is not None and named.preemption_policy:
        return named.preemption_policy
    return PREEMPT_LOWER
