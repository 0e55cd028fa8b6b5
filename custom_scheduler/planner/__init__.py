"""One scheduling pass as a pure function: a snapshot in, a plan out (SPEC sections 2 to 7).

`plan` decides binds, nominations, evictions and the reason every other pending pod waits. It
reads no clock, does no I/O and logs nothing, so the same snapshot always gives the same plan.
The pass, phase by phase:

- `units`: which pods are ours, pending or occupying; gangs; the pass order (SPEC 2, 4, 5.1).
- `priority`: what each pod is worth (SPEC 3).
- `nodes`: eligible nodes, their states and reservations (SPEC 2, 6).
- `filters`: where a pod may run (SPEC 2); `matching`: gang members that differ (SPEC 4).
- here: each unit in order is placed on its own reserved nodes, then free nodes, then by
  `preemption` (SPEC 5, 6); else, if `starvation` says it is due, it reserves (SPEC 6a); else it
  stays pending, with a reason from `reasons` (SPEC 7).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from custom_scheduler.model import (
    Bind,
    Constraints,
    Evict,
    Nominate,
    Plan,
    Pod,
    Reserving,
    Snapshot,
    Unschedulable,
)
from custom_scheduler.planner.filters import Filters
from custom_scheduler.planner.matching import match
from custom_scheduler.planner.nodes import Move, Nodes, NodeState, eligible_nodes
from custom_scheduler.planner.preemption import Found, Victim, VictimSearch, nodes_of
from custom_scheduler.planner.priority import PriorityTable
from custom_scheduler.planner.reasons import Reasons, Scope
from custom_scheduler.planner.starvation import held_by_its_priority_or_lower, reason, waiting_since
from custom_scheduler.planner.units import Unit, Workload
from custom_scheduler.settings import Settings

__all__ = ["plan"]

S = NodeState


def plan(snapshot: Snapshot, *, settings: Settings) -> Plan:
    """Decide one pass: binds, nominations, evictions and reasons for pods left pending."""
    table = PriorityTable.of(snapshot.priority_classes)
    eligibility = eligible_nodes(snapshot.nodes, settings.node_selector)
    workload = Workload.of(snapshot.pods, settings, table)
    filters = Filters(eligibility.nodes, workload.others_request, workload.others_on)
    nodes = Nodes(
        eligibility.nodes,
        workload,
        now=snapshot.now,
        stuck_after=settings.stuck_after,
        may_run=lambda pod, node: bool(filters.fit(pod.constraints).nodes >> node & 1),
    )
    reasons = Reasons(eligibility, nodes, stuck_after=settings.stuck_after)
    return _Pass(
        workload, nodes, filters, reasons, now=snapshot.now, reserve_after=settings.reserve_after
    ).run()


class _Slot(NamedTuple):
    """A member's own reserved node: free, or waiting for its occupant to terminate."""

    pod: Pod
    node: int
    waiting: bool


class _Where(NamedTuple):
    """Where a unit's members may run: the nodes each kind of member may use, and all of them."""

    fits: dict[Constraints, int]  # per distinct constraints of its members
    scope: Scope  # all of them together (None: every eligible node), and why not the others
    uniform: bool  # one kind of member: no matching needed


class _Pass:
    """The pass's decisions so far, and the placing of one unit after another."""

    def __init__(
        self,
        workload: Workload,
        nodes: Nodes,
        filters: Filters,
        reasons: Reasons,
        *,
        now: float,
        reserve_after: float | None,
    ) -> None:
        self.workload, self.nodes, self.filters, self.reasons = workload, nodes, filters, reasons
        self.now, self.reserve_after = now, reserve_after
        self.reserving: Reserving | None = None  # SPEC 6a: at most one unit a pass
        # Nodes this pass gave to units, by the units' priority (SPEC 6a: held by whom).
        self.taken_at: dict[int, int] = {}
        self.search = VictimSearch(nodes, workload)
        self.binds: list[Bind] = []
        self.nominations: list[Nominate] = []
        self.evictions: list[Evict] = []
        self.unschedulable = {
            key: Unschedulable(key, error, invalid=True) for key, error in workload.invalid.items()
        }
        self._scopes: dict[Constraints, _Where] = {}
        self._failed: dict[tuple[object, ...], int] = {}  # see _place

    def run(self) -> Plan:
        """Place or reject every unit in pass order; the plan, lists sorted by pod."""
        for unit in self.workload.units:
            if unit.gang is not None and unit.gang.short_of_quorum:
                self._reject(unit.members, self.reasons.quorum(unit.gang))
            else:
                self._place(unit)
        return Plan(
            binds=tuple(sorted(self.binds, key=lambda b: b.pod)),
            nominations=tuple(sorted(self.nominations, key=lambda n: n.pod)),
            evictions=tuple(sorted(self.evictions, key=lambda e: e.pod)),
            unschedulable=tuple(sorted(self.unschedulable.values(), key=lambda u: u.pod)),
            reserving=self.reserving,
        )

    def _where(self, unit: Unit) -> _Where:
        """The nodes the unit's members may run on (SPEC 2), shared by units alike."""
        shared = unit.constraints
        if shared is not None:
            where = self._scopes.get(shared)
            if where is None:
                fit = self.filters.fit(shared)
                unfit = tuple((why, bits.bit_count()) for why, bits in fit.unfit)
                where = _Where({shared: fit.nodes}, Scope(fit.within(), unfit, shared), True)
                self._scopes[shared] = where
            return where
        first = unit.members[0].constraints
        # Members that differ: the nodes any of them may use; the others counted as the first
        # member's filters judge them.
        fits = {pod.constraints: self.filters.fit(pod.constraints) for pod in unit.members}
        union = 0
        for fit in fits.values():
            union |= fit.nodes
        unfit = tuple(
            (why, count) for why, bits in fits[first].unfit if (count := (bits & ~union).bit_count())
        )
        scope = Scope(union, unfit, tuple(fits))
        return _Where({c: fit.nodes for c, fit in fits.items()}, scope, False)

    def _place(self, unit: Unit) -> None:
        """Its own reserved nodes, then free nodes, then preemption; else it stays pending."""
        nodes = self.nodes
        where = self._where(unit)
        within = where.scope.within
        # Once the nodes are full, unit after unit fails the same way: a unit that holds no node
        # fails as the last one like it did, until a node changes.
        alike = (nodes.version, unit.priority, where.scope.key, unit.need, unit.can_preempt)
        members, reservation = unit.members, nodes.reservation
        holds = (
            members[0].key in reservation
            if len(members) == 1
            else any(pod.key in reservation for pod in members)
        )
        due = self._due(unit)
        if not holds and not due and (can_have := self._failed.get(alike)) is not None:
            self._reject(members, self.reasons.unit(unit, where.scope, can_have=can_have, own=0))
            return
        slots: list[_Slot] = []
        rest: list[Pod] = []
        for pod in unit.members:
            node = nodes.reservation.get(pod.key)  # only nodes it may run on (see Nodes)
            state = nodes.state[node] if node is not None else None
            if node is not None and state in (S.RESERVED_FREE, S.RESERVED_TERMINATING):
                slots.append(_Slot(pod, node, waiting=state is S.RESERVED_TERMINATING))
            else:
                rest.append(pod)
        waiting = any(s.waiting for s in slots)
        required = max(unit.need - len(slots), 0)

        # Free nodes first: plain free ones in name order, then those reserved for lower units.
        free = self._free(unit, rest, where)
        assigned = self._assign(rest, free, where)
        found = Found()
        if len(assigned) < required:
            short = required - len(assigned)
            can_free = 0
            if unit.can_preempt:
                can_free = nodes.count_running_below(unit.priority, within)
                # A cheap upper bound first: nodes of lower pods, and reservations to take over.
                if can_free + nodes.reserved(within) >= short:
                    found, assigned = self._preempt(unit, rest, free, where, required=required, short=short)
                    can_free = found.count
            if found.count < short:
                if due and self._reserve(unit, where, slots, assigned):
                    return
                can_have = len(assigned) + min(can_free, short - 1)
                if not holds and not due:
                    self._failed[alike] = can_have
                self._fail(unit, slots, where.scope, can_have)
                return

        # Placed: its own slots, then free nodes, then nodes freed by preemption.
        placements = [(s.pod, s.node) for s in slots] + [(pod, node) for node, pod in assigned.items()]
        nominate = waiting or bool(found.victims)
        self._take(unit, [node for _, node in placements], Move.NOMINATE if nominate else Move.BIND)
        evicted = self._evict(unit, found.victims, assigned)
        placed = {pod.key for pod, _ in placements}
        left_over = [pod for pod in rest if pod.key not in placed]
        if left_over:
            self._reject(left_over, self.reasons.beyond_quorum(unit, where.scope))
        self._release(unit, keep={node for _, node in placements}, placed=placed)
        names = nodes.names
        if nominate:
            for pod, node in placements:
                self.nominations.append(Nominate(pod.key, names[node], self._leaving(names[node], evicted)))
        else:
            self.binds.extend(Bind(pod.key, names[node]) for pod, node in placements)

    def _take(self, unit: Unit, taken: list[int], move: Move) -> None:
        """The unit is bound or nominated to these nodes."""
        for node in taken:
            self.nodes.move(node, move)
            self.taken_at[unit.priority] = self.taken_at.get(unit.priority, 0) | 1 << node

    # -- no starvation (SPEC 6a) -------------------------------------------------------------

    def _due(self, unit: Unit) -> bool:
        """Whether the unit, should it not be placed, may be the one that reserves (SPEC 6a)."""
        return (
            self.reserving is None
            and self.reserve_after is not None
            and self.now - waiting_since(unit) >= self.reserve_after
        )

    def _reserve(self, unit: Unit, where: _Where, slots: list[_Slot], assigned: dict[int, Pod]) -> bool:
        """SPEC 6a: the first unit, in pass order, that cannot be placed, has waited long enough,
        and could be placed were the nodes held by pods of its priority or lower free, reserves:
        it keeps the nodes it holds and is nominated to the free ones it can get, up to its need."""
        could = held_by_its_priority_or_lower(self.nodes, unit.priority, self.taken_at)
        within = where.scope.within
        if where.uniform:
            possible = (could if within is None else could & within).bit_count()
        else:
            possible = len(match(unit.members, nodes_of(could & (within or 0)), where.fits))
        if possible < unit.need:
            return False  # it does not wait for the impossible
        held = ([(s.pod, s.node) for s in slots] + [(pod, node) for node, pod in assigned.items()])[
            : unit.need
        ]
        self._take(unit, [node for _, node in held], Move.NOMINATE)
        taken = {pod.key for pod, _ in held}
        self._release(unit, keep={node for _, node in held}, placed=taken)
        assert self.reserve_after is not None
        waited = self.now - waiting_since(unit)
        text = reason(unit, held=len(held), waited=waited, reserve_after=self.reserve_after)
        names = self.nodes.names
        for pod, node in held:
            self.nominations.append(Nominate(pod.key, names[node], reason=text))
        self._reject([pod for pod in unit.members if pod.key not in taken], text)
        gang = unit.gang
        subject = f"gang {gang.label}" if gang is not None else f"pod {unit.members[0].key}"
        self.reserving = Reserving(subject, len(held), unit.need, waited)
        return True

    def _free(self, unit: Unit, rest: list[Pod], where: _Where) -> list[int]:
        """Free nodes for the members without one, in name order: plain free ones, then, if too
        few, those reserved for units of strictly lower priority (taken only if it is placed)."""
        nodes, wanted = self.nodes, len(rest)
        if where.uniform:
            within = where.scope.within
            free = nodes.first(S.FREE, wanted, within)
            if len(free) < wanted:
                free += nodes.reserved_free_below(unit.priority, wanted - len(free), within)
            return free
        found: set[int] = set()
        for bits in where.fits.values():
            free = nodes.first(S.FREE, wanted, bits)
            if len(free) < wanted:
                free += nodes.reserved_free_below(unit.priority, wanted - len(free), bits)
            found.update(free)
        return sorted(found)

    @staticmethod
    def _assign(rest: list[Pod], free: list[int], where: _Where) -> dict[int, Pod]:
        """Which member goes to which node: in order, or, for members that differ, a matching."""
        if where.uniform:
            return dict(zip(free, rest, strict=False))
        return match(rest, free, where.fits)

    def _preempt(
        self, unit: Unit, rest: list[Pod], free: list[int], where: _Where, *, required: int, short: int
    ) -> tuple[Found, dict[int, Pod]]:
        """Victims so that the whole unit fits, and where its members go (SPEC 6)."""
        search, scope = self.search, where.scope
        if where.uniform:
            found = search.find(unit, short, within=scope.within, scope=scope.key)
            return found, dict(zip(free + found.freed, rest, strict=False))
        # Members that differ: a matching decides which nodes serve.
        found = search.find_for_members(unit, rest, free, where.fits, required=required)
        if found.victims:
            return found, match(rest, sorted(free + found.freed), where.fits)
        found.count = min(found.count, short - 1)
        return found, {}

    def _evict(self, unit: Unit, victims: list[Victim], assigned: dict[int, Pod]) -> set[str]:
        """Commit a preemption: evictions in the plan, gangs' counts, nodes left terminating."""
        nodes, workload = self.nodes, self.workload
        evicted = {v.pod.key for v in victims}
        self.search.evicted |= evicted
        vacated: set[int] = set()
        for pod, cause in victims:
            node = nodes.index.get(pod.node_name)
            preemptor = (
                (assigned.get(node) if node is not None else None) or assigned.get(cause) or unit.members[0]
            )
            self.evictions.append(Evict(pod.key, pod.node_name, preemptor.key))
            gang = workload.gang_of.get(pod.key)
            if gang is not None:
                gang.staying -= 1
                gang.evicted += 1
            if node is not None and nodes.state[node] not in (S.BOUND, S.NOMINATED):
                vacated.add(node)
        for node in vacated:
            if all(o.deleting or o.key in evicted for o in workload.occupants[nodes.names[node]]):
                nodes.move(node, Move.VACATE)
        return evicted

    def _leaving(self, node: str, evicted: set[str]) -> tuple[str, ...]:
        """The pods that must leave a node before its nominee can be bound."""
        occupants = self.workload.occupants.get(node, ())
        return tuple(sorted(o.key for o in occupants if o.deleting or o.key in evicted))

    def _release(self, unit: Unit, keep: Collection[int] = (), *, placed: Collection[str] = ()) -> None:
        """The unit is done with the reservations it did not use.

        A nominee placed on another node gives its old one on at once. Otherwise the node stays
        reserved for the rest of the pass (SPEC 6: only the nominee, or a unit of strictly higher
        priority, may use it); the plan no longer nominates the pod there, so the shell clears that
        nomination and the next pass has the node free of it.
        """
        for pod in unit.members:
            node = self.nodes.reservation.get(pod.key)
            if node is not None and node not in keep:
                self.nodes.forget(pod.key)
                if pod.key in placed:
                    self.nodes.pass_on(node, placed)

    def _fail(self, unit: Unit, slots: list[_Slot], scope: Scope, can_have: int) -> None:
        """The unit cannot be placed whole: none of it is placed (SPEC 4), each member says why.

        A nomination is a placement, so a unit that cannot be placed keeps none, even while
        victims leave its nodes; the next pass places it afresh.
        """
        reason = self.reasons.unit(unit, scope, can_have=can_have + len(slots), own=len(slots))
        self._release(unit)
        self._reject(unit.members, reason)

    def _reject(self, pods: list[Pod], reason: str) -> None:
        for pod in pods:
            self.unschedulable[pod.key] = Unschedulable(pod.key, reason)
