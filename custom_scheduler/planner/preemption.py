"""Preemption: which running pods to evict so that a unit fits (SPEC 6).

1. Candidates are running nodes whose pods' protected priority is strictly below the unit's,
   and that the unit may use (not reserved for a unit it does not outrank).
2. They are tried in victim order: lowest protected priority, then nodes without gang members,
   then the newest pods (least work lost), then node name.
3. Evicting a gang member that would leave its running gang below min-available evicts the
   whole gang (gang integrity); all its nodes are freed, for the unit or for anyone.
4. The search stops as soon as enough nodes are freed; the caller commits the victims only if
   the whole unit then fits (all or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from custom_scheduler.model import Pod
from custom_scheduler.planner.nodes import RUNNING_STATES, STUCK_STATES, Nodes
from custom_scheduler.planner.units import Gang, Unit, Workload


class Victim(NamedTuple):
    """A pod to evict, and the candidate node whose choice pulled it in."""

    pod: Pod
    cause: int


@dataclass(slots=True)
class Found:
    """The nodes a search freed for the unit and the pods it evicts for them; or, when it found
    too few, only how many (`count`). `freed_by` says which nodes each chosen node's eviction
    freed (a gang evicted whole frees several)."""

    freed: list[int] = field(default_factory=list)
    victims: list[Victim] = field(default_factory=list)
    count: int = 0
    freed_by: dict[int, list[int]] = field(default_factory=dict)


class VictimSearch:
    """Running nodes in victim order, searched by every unit that must preempt in a pass."""

    def __init__(self, nodes: Nodes, workload: Workload) -> None:
        self.nodes = nodes
        self.workload = workload
        ordered = sorted(nodes.occupied, key=lambda o: (o.level, o.gang_member, -o.newest, o.node))
        self.order = [o.node for o in ordered]
        self.levels = [o.level for o in ordered]
        # next_live[i] == i while candidate i may still be running; else a later index to skip to.
        self.next_live = list(range(len(ordered) + 1))
        self._by_name: dict[int, list[Pod]] = {}  # a gang's occupying members by name, sorted once
        # (nodes.version, priority) -> nodes a search freed before running out of candidates: a
        # unit of that priority that holds no reservation can free no more, until a node changes.
        self._exhausted: dict[tuple[int, int, object], int] = {}

    def _live_from(self, start: int) -> int:
        """The first candidate from `start` on whose node still runs, skipping dead ones for good."""
        end, state, order = len(self.order), self.nodes.state, self.order
        index, passed = start, []
        while index < end:
            jump = self.next_live[index]
            if jump == index:
                if state[order[index]] in RUNNING_STATES:
                    break
                jump = index + 1
            passed.append(index)
            index = jump
        for skipped in passed:
            self.next_live[skipped] = index
        return index

    def find(
        self,
        unit: Unit,
        short: int,
        *,
        within: int | None = None,
        scope: object = None,
        skip: frozenset[int] = frozenset(),
    ) -> Found:
        """Victims in victim order until `short` nodes the unit may use (`within`; None: any)
        are free, fewer if it can't; not choosing the nodes in `skip`. Units of one priority and
        `scope` (a key for `within`) share what a search that ran out of candidates found.

        When it cannot, the victims are of no use, and only how many nodes it found counts.
        """
        nodes, workload = self.nodes, self.workload
        holds = skip or scope is None or any(pod.key in nodes.reservation for pod in unit.members)
        moment = (nodes.version, unit.priority, scope)
        if not holds and (can := self._exhausted.get(moment)) is not None and can < short:
            return Found(count=can)
        chosen: set[str] = set()  # pod keys
        taken_from: dict[int, int] = {}  # id(gang) -> members chosen
        closed: set[int] = set()  # id(gang) of gangs evicted whole
        found = Found()
        freed: set[int] = set()
        index = self._live_from(0)
        while index < len(self.order) and len(found.freed) < short:
            node, level = self.order[index], self.levels[index]
            if level >= unit.priority:
                break
            index = self._live_from(index + 1)
            if node in freed or node in skip or not nodes.usable(node, unit):
                continue
            if within is not None and not within >> node & 1:
                continue  # it could not run there: nobody is evicted from it for it (SPEC 6)
            group = self._eviction_group(workload.occupants[nodes.names[node]], chosen, taken_from, closed)
            found.victims += [Victim(pod, node) for pod in group]
            others = {nodes.index.get(p.node_name) for p in group} - {node, None}
            found.freed_by[node] = []
            for other in [node, *sorted(o for o in others if o is not None)]:
                if other in freed or nodes.state[other] in STUCK_STATES or not nodes.usable(other, unit):
                    continue  # a node with a stuck pod is never used, even once its other pods go
                if within is not None and not within >> other & 1:
                    continue
                occupants = workload.occupants[nodes.names[other]]
                if all(o.key in chosen or o.deleting for o in occupants):
                    found.freed.append(other)
                    found.freed_by[node].append(other)
                    freed.add(other)
        found.count = len(found.freed)
        if found.count < short and not holds:
            self._exhausted[moment] = found.count
        return found

    def _eviction_group(
        self, occupants: list[Pod], chosen: set[str], taken_from: dict[int, int], closed: set[int]
    ) -> list[Pod]:
        """A node's pods, plus every running gang that evicting them would break (SPEC 6)."""
        group = [p for p in sorted(occupants, key=lambda p: p.name) if p.key not in chosen]
        chosen.update(p.key for p in group)
        gang_of = self.workload.gang_of
        position = 0
        while position < len(group):
            gang = gang_of.get(group[position].key)
            position += 1
            if gang is None or id(gang) in closed:
                continue
            taken_from[id(gang)] = taken_from.get(id(gang), 0) + 1
            if gang.staying - taken_from[id(gang)] < gang.min_all:
                closed.add(id(gang))  # once whole, a gang is not scanned again: linear in its size
                for member in self._members(gang):
                    if not member.deleting and member.key not in chosen:
                        chosen.add(member.key)
                        group.append(member)
        return group

    def _members(self, gang: Gang) -> list[Pod]:
        members = self._by_name.get(id(gang))
        if members is None:
            members = self._by_name[id(gang)] = sorted(gang.occupying, key=lambda p: p.name)
        return members
