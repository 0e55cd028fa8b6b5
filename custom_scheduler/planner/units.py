"""Who is scheduled, in which groups, in what order (SPEC sections 2, 4 and 5.1).

A pass schedules *units*: a gang (every pending member, placed all or nothing) or a single pod.
This module reads the snapshot's pods once: which are ours and pending or occupying a node,
their priorities, their gangs, the annotations that are wrong, and the order units are tried in.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    ANNOTATIONS,
    GROUP_NAME,
    MIN_AVAILABLE,
    PREEMPT_NEVER,
    Constraints,
    Pod,
)
from custom_scheduler.planner.priority import PriorityTable, effective_priority, preemption_policy
from custom_scheduler.settings import Settings

FINISHED = frozenset({"Succeeded", "Failed"})
MAX_MIN_AVAILABLE_DIGITS = 9
MAX_GROUP_NAME = 63  # as long as a label value may be


def cut(text: str, limit: int = 64) -> str:
    """A user's text cut short, so that what it costs to say is bounded."""
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: str) -> str:
    """A user's value, quoted and cut short, safe to put in an event."""
    return json.dumps(cut(value))


class GangAnnotations(NamedTuple):
    """What a pod's annotations say about its gang: a group (or None), its min-available, or an error."""

    group: str | None
    min_available: int
    error: str | None


_SINGLE = GangAnnotations(None, 1, None)


def _unknown(key: str, value: str) -> GangAnnotations:
    """A key under our prefix that the scheduler does not know: a typo, most likely."""
    name = key.removeprefix(ANNOTATION_PREFIX)
    known = [k.removeprefix(ANNOTATION_PREFIX) for k in ANNOTATIONS]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = (
        f": did you mean {ANNOTATION_PREFIX}{close[0]}?" if close else f" (it knows {', '.join(ANNOTATIONS)})"
    )
    return GangAnnotations(None, 1, f"annotation {cut(key, 128)}={shown(value)} is unknown{hint}")


def gang_annotations(pod: Pod) -> GangAnnotations:
    """The pod's gang annotations, validated (SPEC 4, "Invalid annotations")."""
    if not pod.annotations:
        return _SINGLE
    if any(k not in ANNOTATIONS for k in pod.annotations):
        key = min(k for k in pod.annotations if k not in ANNOTATIONS)
        return _unknown(key, pod.annotations[key])
    group = pod.annotations.get(GROUP_NAME)
    raw_min = pod.annotations.get(MIN_AVAILABLE)
    min_available = 1
    if raw_min is not None:
        text = raw_min.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_MIN_AVAILABLE_DIGITS) or int(text) < 1:
            return GangAnnotations(
                None,
                1,
                f"annotation {MIN_AVAILABLE}={shown(raw_min)} is invalid: "
                f"it must be a positive integer of at most {MAX_MIN_AVAILABLE_DIGITS} digits",
            )
        min_available = int(text)
    if group is None:
        if raw_min is not None:
            return GangAnnotations(
                None, 1, f"annotation {MIN_AVAILABLE}={shown(raw_min)} is invalid without {GROUP_NAME}"
            )
        return _SINGLE
    if not group.strip():
        return GangAnnotations(
            None, 1, f"annotation {GROUP_NAME}={shown(group)} is invalid: it must not be empty"
        )
    if len(group) > MAX_GROUP_NAME:
        return GangAnnotations(
            None,
            1,
            f"annotation {GROUP_NAME}={shown(group)} is invalid: "
            f"it must have at most {MAX_GROUP_NAME} characters",
        )
    return GangAnnotations(group, min_available, None)


@dataclass(slots=True, eq=False)
class Gang:
    """A gang's members and the counts SPEC 4 and 6 reason about; the pass updates `staying` and
    `evicted` as it evicts members."""

    namespace: str
    name: str
    pending: list[Pod] = field(default_factory=list)
    occupying: list[Pod] = field(default_factory=list)
    priority: int = 0
    min_pending: int = 1  # max of the annotation over pending members (placement)
    min_all: int = 1  # max over all members (protection against partial eviction)
    staying: int = 0  # occupying, not terminating, not evicted by this pass
    evicted: int = 0  # members evicted by this pass: they no longer count as occupying

    @property
    def label(self) -> str:
        """`namespace/name`, as reasons name the gang."""
        return f"{self.namespace}/{self.name}"

    @property
    def occupying_now(self) -> int:
        """Occupying members, less those this pass has evicted."""
        return len(self.occupying) - self.evicted

    @property
    def short_of_quorum(self) -> bool:
        """Fewer members exist than its min-available: it waits (SPEC 4)."""
        return self.occupying_now + len(self.pending) < self.min_pending


class PassOrder(NamedTuple):
    """SPEC 5.1: higher priority first, then older, then namespace and name (a gang before a pod)."""

    negative_priority: int
    creation: float
    namespace: str
    name: str
    single: int


@dataclass(slots=True, eq=False)
class Unit:
    """What a pass places at once: a single pending pod, or a gang's pending members in order."""

    order: PassOrder
    priority: int
    members: list[Pod]
    can_preempt: bool
    gang: Gang | None
    # The constraints all its members share, or None when they differ (SPEC 4: a matching).
    constraints: Constraints | None

    @property
    def need(self) -> int:
        """Nodes the unit needs now: 1, or a gang's min-available less its members still running."""
        gang = self.gang
        return 1 if gang is None else max(gang.min_pending - gang.occupying_now, 0)


@dataclass(slots=True)
class Workload:
    """The snapshot's pods as the pass sees them (SPEC 2 to 5.1)."""

    priority: dict[str, int]  # effective priority, by pod key, of every managed pod in scope
    occupants: dict[str, list[Pod]]  # node name -> our pods occupying it
    gang_of: dict[str, Gang]  # pod key -> its gang (valid members only)
    units: list[Unit]  # in pass order
    invalid: dict[str, str]  # pending pod key -> what is wrong with its annotations
    # What pods that are not ours (DaemonSets, system pods) take on each node, by node name: the
    # resources they request, and how many they are.
    others_request: dict[str, dict[str, int]]
    others_on: dict[str, int]

    @classmethod
    def of(cls, pods: Iterable[Pod], settings: Settings, table: PriorityTable) -> Workload:
        """Sort managed pods into occupying and pending, gangs and units."""
        scheduler, namespace = settings.scheduler_name, settings.namespace
        priority: dict[str, int] = {}
        occupants: dict[str, list[Pod]] = {}
        gang_of: dict[str, Gang] = {}
        gangs: dict[tuple[str, str], Gang] = {}
        invalid: dict[str, str] = {}
        singles: list[Pod] = []
        # Other pods on a node, by their constraints (interned: pods of one DaemonSet or Deployment
        # share them), their requests summed once below.
        others: dict[tuple[str, Constraints], int] = {}
        for pod in pods:
            if pod.scheduler_name != scheduler or (namespace is not None and pod.namespace != namespace):
                if pod.node_name and pod.phase not in FINISHED:
                    alike = (pod.node_name, pod.constraints)
                    others[alike] = others.get(alike, 0) + 1
                continue
            if pod.node_name:
                if pod.phase in FINISHED:
                    continue
                occupying = True
            elif pod.phase == "Pending" and not pod.deleting and not pod.gated:
                occupying = False
            else:
                continue
            key = pod.key
            priority[key] = effective_priority(pod, table)
            if occupying:
                occupants.setdefault(pod.node_name, []).append(pod)
            group, min_available, error = gang_annotations(pod)
            if error is not None:
                if not occupying:
                    invalid[key] = error
                continue
            if group is None:
                if not occupying:
                    singles.append(pod)
                continue
            gang = gangs.get((pod.namespace, group))
            if gang is None:
                gang = gangs[(pod.namespace, group)] = Gang(pod.namespace, group)
            gang_of[key] = gang
            gang.min_all = max(gang.min_all, min_available)
            if occupying:
                gang.occupying.append(pod)
                if not pod.deleting:
                    gang.staying += 1
            else:
                gang.pending.append(pod)
                gang.min_pending = max(gang.min_pending, min_available)
        for gang in gangs.values():
            gang.priority = max(priority[p.key] for p in (*gang.pending, *gang.occupying))
        units = _units(singles, gangs.values(), priority, table)
        others_request: dict[str, dict[str, int]] = {}
        others_on: dict[str, int] = {}
        for (node, constraints), count in others.items():
            others_on[node] = others_on.get(node, 0) + count
            if constraints.requests:
                taken = others_request.setdefault(node, {})
                for resource, amount in constraints.requests:
                    taken[resource] = taken.get(resource, 0) + amount * count
        return cls(priority, occupants, gang_of, units, invalid, others_request, others_on)

    def protected(self, pod: Pod) -> int:
        """A pod's priority as a victim: its gang's priority, or its own (SPEC 4)."""
        gang = self.gang_of.get(pod.key)
        return gang.priority if gang is not None else self.priority[pod.key]


def _units(
    singles: list[Pod], gangs: Iterable[Gang], priority: dict[str, int], table: PriorityTable
) -> list[Unit]:
    """Units in pass order: singles, and gangs with pending members."""
    units = []
    for pod in singles:
        own = priority[pod.key]
        units.append(
            Unit(
                order=PassOrder(-own, pod.creation, pod.namespace, pod.name, 1),
                priority=own,
                members=[pod],
                can_preempt=preemption_policy(pod, table) != PREEMPT_NEVER,
                gang=None,
                constraints=pod.constraints,
            )
        )
    for gang in gangs:
        if not gang.pending:
            continue
        members = sorted(gang.pending, key=lambda p: (p.creation, p.name))
        units.append(
            Unit(
                order=PassOrder(-gang.priority, members[0].creation, gang.namespace, gang.name, 0),
                priority=gang.priority,
                members=members,
                can_preempt=all(preemption_policy(p, table) != PREEMPT_NEVER for p in members),
                gang=gang,
                constraints=members[0].constraints
                if all(p.constraints is members[0].constraints for p in members)
                else None,
            )
        )
    units.sort(key=lambda u: u.order)
    return units
