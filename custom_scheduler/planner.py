"""One scheduling pass as a pure function: a snapshot in, a plan out (SPEC sections 2 to 7).

`plan` decides binds, nominations, evictions and the reason every other pending pod waits. It
reads no clock, does no I/O and logs nothing, so the same snapshot always gives the same plan.

Work is near-linear in the size of the cluster: nodes are kept in a ledger (free nodes in a
heap, preemption candidates in victim order with a Fenwick tree counting them by priority), so
a unit that cannot be placed is turned away, and its reason written, in logarithmic time.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from custom_scheduler.model import (
    GROUP_NAME,
    MIN_AVAILABLE,
    PREEMPT_LOWER,
    PREEMPT_NEVER,
    Bind,
    Evict,
    Node,
    Nominate,
    Plan,
    Pod,
    PriorityClass,
    Snapshot,
    Unschedulable,
)
from custom_scheduler.settings import Settings

_FINISHED = frozenset({"Succeeded", "Failed"})
_MAX_MIN_AVAILABLE_DIGITS = 9

# ---------------------------------------------------------------------------------------------
# Priority (SPEC section 3)


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
    cls = table.by_name.get(pod.priority_class) if pod.priority_class else table.default
    if cls is not None and cls.preemption_policy:
        return cls.preemption_policy
    return PREEMPT_LOWER


# ---------------------------------------------------------------------------------------------
# Gang annotations (SPEC section 4)


def _shown(value: str) -> str:
    """A user's value, quoted and cut short, safe to put in an event."""
    cut = value if len(value) <= 64 else value[:64] + "..."
    return json.dumps(cut)


def gang_annotations(pod: Pod) -> tuple[str | None, int, str | None]:
    """(group name or None, min-available, error message or None) from a pod's annotations."""
    if not pod.annotations:
        return None, 1, None
    group = pod.annotations.get(GROUP_NAME)
    raw_min = pod.annotations.get(MIN_AVAILABLE)
    min_available = 1
    if raw_min is not None:
        text = raw_min.strip()
        if (
            not (text.isascii() and text.isdigit() and len(text) <= _MAX_MIN_AVAILABLE_DIGITS)
            or int(text) < 1
        ):
            return (
                None,
                1,
                (
                    f"annotation {MIN_AVAILABLE}={_shown(raw_min)} is invalid: "
                    f"it must be a positive integer of at most {_MAX_MIN_AVAILABLE_DIGITS} digits"
                ),
            )
        min_available = int(text)
    if group is None:
        if raw_min is not None:
            return None, 1, (f"annotation {MIN_AVAILABLE}={_shown(raw_min)} is invalid without {GROUP_NAME}")
        return None, 1, None
    if not group.strip():
        return None, 1, f"annotation {GROUP_NAME}={_shown(group)} is invalid: it must not be empty"
    return group, min_available, None


# ---------------------------------------------------------------------------------------------
# The pass's view of pods, gangs and units


@dataclass(slots=True)
class _Gang:
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
        return f"{self.namespace}/{self.name}"

    @property
    def occupying_now(self) -> int:
        """Occupying members, less those this pass has evicted."""
        return len(self.occupying) - self.evicted


@dataclass(slots=True)
class _Unit:
    order: tuple[int, float, str, str, int]
    priority: int
    members: list[Pod]
    need: int
    can_preempt: bool
    gang: _Gang | None


@dataclass(slots=True)
class _Slot:
    """A member's own nominated node: ready (free) or waiting (its occupant is terminating)."""

    pod: Pod
    node: str
    waiting: bool


# ---------------------------------------------------------------------------------------------
# The node ledger


class _Fenwick:
    """Counts of live positions, with prefix sums, in O(log n)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tree = [0] * (size + 1)
        self.total = 0

    def add(self, index: int, delta: int) -> None:
        self.total += delta
        i = index + 1
        while i <= self.size:
            self.tree[i] += delta
            i += i & -i

    def prefix(self, end: int) -> int:
        """Sum over positions [0, end)."""
        s, i = 0, end
        while i > 0:
            s += self.tree[i]
            i -= i & -i
        return s


_FREE, _TERMINATING, _OCCUPIED, _STUCK = 0, 1, 2, 3


class _Ledger:
    """Eligible nodes and what each holds as the pass goes on.

    Every eligible node is in exactly one place: taken (by this pass), reserved (for a nominee),
    free (a heap in name order), terminating or stuck terminating, or occupied (a preemption candidate,
    counted by its occupants' protected priority).
    """

    def __init__(
        self,
        free: list[str],
        terminating: set[str],
        stuck: set[str],
        candidates: list[tuple[int, int, float, str]],
        reserved: dict[str, int],
    ) -> None:
        free_set = set(free)
        self.candidates = candidates  # (protected priority, gang member?, -creation, node)
        self.prios = [c[0] for c in candidates]
        self.position = {c[3]: i for i, c in enumerate(candidates)}
        self.next_live = list(range(len(candidates) + 1))
        self.occupied = _Fenwick(len(candidates))
        self.reserved = dict(reserved)
        self.reserved_prios = sorted(reserved.values())
        self.reserved_free = sum(1 for n in reserved if n in free_set)
        self.free = [n for n in free if n not in reserved]
        heapq.heapify(self.free)
        self.terminating = {n for n in terminating if n not in reserved}
        self.stuck = {n for n in stuck if n not in reserved}
        self.taken: set[str] = set()
        self.nominated = 0  # taken nodes that hold a nomination rather than a bind
        self.state: dict[str, int] = dict.fromkeys(free, _FREE)
        self.state.update(dict.fromkeys(terminating, _TERMINATING))
        self.state.update(dict.fromkeys(stuck, _STUCK))
        for i, c in enumerate(candidates):
            self.state[c[3]] = _OCCUPIED
            if c[3] not in reserved:
                self.occupied.add(i, 1)

    # Candidates in victim order, skipping dead ones with path compression.
    def live_from(self, index: int) -> int:
        root = index
        while self.next_live[root] != root:
            root = self.next_live[root]
        while self.next_live[index] != root:
            self.next_live[index], index = root, self.next_live[index]
        return root

    def _unreserve(self, node: str) -> None:
        self.reserved_prios.remove(self.reserved.pop(node))
        if self.state[node] == _FREE:
            self.reserved_free -= 1

    def _leave_category(self, node: str) -> None:
        if node in self.reserved:
            self._unreserve(node)
        elif self.state[node] == _OCCUPIED:
            self.occupied.add(self.position[node], -1)
        elif self.state[node] == _TERMINATING:
            self.terminating.discard(node)
        elif self.state[node] == _STUCK:
            self.stuck.discard(node)
        # Free nodes leave the heap through pop_free only.

    def _kill_candidate(self, node: str) -> None:
        i = self.position.get(node)
        if i is not None:
            self.next_live[i] = i + 1

    def take(self, node: str) -> None:
        """The pass gives this (reserved, occupied or terminating) node to a unit."""
        self._leave_category(node)
        self._kill_candidate(node)
        self.taken.add(node)

    def pop_free(self) -> str | None:
        if not self.free:
            return None
        node = heapq.heappop(self.free)
        self.taken.add(node)
        return node

    def unpop_free(self, node: str) -> None:
        self.taken.discard(node)
        heapq.heappush(self.free, node)

    def vacate(self, node: str) -> None:
        """Its occupants were evicted but no pod goes there this pass: it is terminating now."""
        in_reserve = node in self.reserved
        if not in_reserve:
            self._leave_category(node)
            self.terminating.add(node)
        self._kill_candidate(node)
        self.state[node] = _TERMINATING

    def rereserve(self, node: str, priority: int) -> None:
        """A reserved node changes hands: it stays reserved, at the new holder's priority."""
        self.reserved_prios.remove(self.reserved[node])
        self.reserved[node] = priority
        bisect.insort(self.reserved_prios, priority)

    def give_back(self, node: str) -> None:
        """A reservation ends before the pass does: the node goes back to what it holds."""
        if node not in self.reserved or node in self.taken:
            return
        self._unreserve(node)
        state = self.state[node]
        if state == _FREE:
            heapq.heappush(self.free, node)
        elif state == _TERMINATING:
            self.terminating.add(node)
        elif state == _STUCK:
            self.stuck.add(node)
        else:
            self.occupied.add(self.position[node], 1)

    def lower_count(self, priority: int) -> int:
        """Occupied, unreserved nodes whose occupants all have lower protected priority."""
        return self.occupied.prefix(bisect.bisect_left(self.prios, priority))


# ---------------------------------------------------------------------------------------------
# The pass


def _short_of_quorum(gang: _Gang) -> bool:
    """Fewer members exist than its min-available: it waits (SPEC 4)."""
    return gang.occupying_now + len(gang.pending) < gang.min_pending


def plan(snapshot: Snapshot, *, settings: Settings) -> Plan:
    """Decide one pass: binds, nominations, evictions and reasons for pods left pending."""
    return _Pass(snapshot, settings).run()


class _Pass:
    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self.table = PriorityTable.of(snapshot.priority_classes)
        self.now, self.stuck_after = snapshot.now, settings.stuck_after
        self.prio: dict[str, int] = {}  # by pod uid-or-key
        self.binds: list[Bind] = []
        self.nominations: list[Nominate] = []
        self.evictions: list[Evict] = []
        self.unschedulable: dict[str, Unschedulable] = {}
        # Reason texts by what they are made of: once the nodes are full, thousands of waiting
        # units share one text (one string, formatted once).
        self._texts: dict[tuple[object, ...], str] = {}
        self._classify_nodes(snapshot.nodes, settings)
        self._classify_pods(snapshot.pods, settings)

    # -- input ------------------------------------------------------------------------------

    def _classify_nodes(self, nodes: Iterable[Node], settings: Settings) -> None:
        by_name: dict[str, Node] = {}
        for n in sorted(nodes, key=lambda n: (n.name, n.ready, n.unschedulable)):
            by_name[n.name] = n
        self.node_total = len(by_name)
        self.not_selected = self.not_ready = self.cordoned = 0
        self.eligible: set[str] = set()
        selector = settings.node_selector
        for n in by_name.values():
            if selector.requirements and not selector.matches(n.labels):
                self.not_selected += 1
            elif not n.ready:
                self.not_ready += 1
            elif n.unschedulable:
                self.cordoned += 1
            else:
                self.eligible.add(n.name)

    def _classify_pods(self, pods: Iterable[Pod], settings: Settings) -> None:
        name, namespace = settings.scheduler_name, settings.namespace
        self.occupants: dict[str, list[Pod]] = {}
        self.gang_of: dict[str, _Gang] = {}  # by pod key
        gangs: dict[tuple[str, str], _Gang] = {}
        singles: list[Pod] = []
        table = self.table
        for pod in pods:
            if pod.scheduler_name != name or (namespace is not None and pod.namespace != namespace):
                continue
            if pod.node_name:
                if pod.phase in _FINISHED:
                    continue
                occupying = True
            elif pod.phase == "Pending" and not pod.deleting:
                occupying = False
            else:
                continue
            key = pod.key
            self.prio[key] = effective_priority(pod, table)
            if occupying:
                self.occupants.setdefault(pod.node_name, []).append(pod)
            group, min_available, error = gang_annotations(pod)
            if error is not None:
                if not occupying:
                    self.unschedulable[key] = Unschedulable(key, error, invalid=True)
                continue
            if group is None:
                if not occupying:
                    singles.append(pod)
                continue
            gang = gangs.get((pod.namespace, group))
            if gang is None:
                gang = gangs[(pod.namespace, group)] = _Gang(pod.namespace, group)
            self.gang_of[key] = gang
            if occupying:
                gang.occupying.append(pod)
                gang.min_all = max(gang.min_all, min_available)
                if not pod.deleting:
                    gang.staying += 1
            else:
                gang.pending.append(pod)
                gang.min_pending = max(gang.min_pending, min_available)
                gang.min_all = max(gang.min_all, min_available)
        for gang in gangs.values():
            gang.priority = max(self.prio[p.key] for p in (*gang.pending, *gang.occupying))
        self.gangs = gangs
        self.units = self._units(singles, gangs.values())

    def _units(self, singles: list[Pod], gangs: Iterable[_Gang]) -> list[_Unit]:
        table = self.table
        units = []
        for pod in singles:
            prio = self.prio[pod.key]
            units.append(
                _Unit(
                    order=(-prio, pod.creation, pod.namespace, pod.name, 1),
                    priority=prio,
                    members=[pod],
                    need=1,
                    can_preempt=preemption_policy(pod, table) != PREEMPT_NEVER,
                    gang=None,
                )
            )
        for gang in gangs:
            if not gang.pending:
                continue
            members = sorted(gang.pending, key=lambda p: (p.creation, p.name))
            units.append(
                _Unit(
                    order=(-gang.priority, members[0].creation, gang.namespace, gang.name, 0),
                    priority=gang.priority,
                    members=members,
                    need=max(gang.min_pending - len(gang.occupying), 0),
                    can_preempt=all(preemption_policy(p, table) != PREEMPT_NEVER for p in members),
                    gang=gang,
                )
            )
        self.unit_of = {p.key: unit for unit in units for p in unit.members}
        units.sort(key=lambda u: u.order)
        return units

    def _stuck(self, pod: Pod) -> bool:
        """Terminating, and still there `stuck_after` seconds past its deletionTimestamp."""
        return pod.deleting and pod.deletion_time > 0 and pod.deletion_time + self.stuck_after < self.now

    def _protected(self, pod: Pod) -> int:
        gang = self.gang_of.get(pod.key)
        return gang.priority if gang is not None else self.prio[pod.key]

    def _build_ledger(self) -> None:
        """Eligible nodes by what they hold, and the reservations of nominees that can use them."""
        free, terminating, stuck, candidates = [], set(), set(), []
        for node in sorted(self.eligible):
            pods = self.occupants.get(node)
            if not pods:
                free.append(node)
            elif any(self._stuck(p) for p in pods):
                stuck.add(node)
            elif any(p.deleting for p in pods):
                terminating.add(node)
            else:
                candidates.append(
                    (
                        max(self._protected(p) for p in pods),
                        int(any(p.key in self.gang_of for p in pods)),
                        -max(p.creation for p in pods),
                        node,
                    )
                )
        candidates.sort()
        # Reservations: a pending pod's nominated node, if eligible; the first unit in pass
        # order holds a node that several pods name.
        self.reservation: dict[str, str] = {}  # pod key -> node
        holder: dict[str, str] = {}  # node -> pod key
        reserved: dict[str, int] = {}
        self.nominees: dict[str, list[str]] = {}  # node -> its nominees, in pass order
        for unit in self.units:
            for pod in unit.members:
                node = pod.nominated_node
                if node and node in self.eligible:
                    self.nominees.setdefault(node, []).append(pod.key)
                    if node not in holder:
                        holder[node] = pod.key
                        reserved[node] = unit.priority
                        self.reservation[pod.key] = node
        self.holder = holder
        self.ledger = _Ledger(free, terminating, stuck, candidates, reserved)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Plan:
        self._build_ledger()
        for unit in self.units:
            gang = unit.gang
            if gang is not None and _short_of_quorum(gang):
                reason = (
                    f"gang {gang.label}: {gang.occupying_now + len(gang.pending)} of "
                    f"{gang.min_pending} required members exist"
                )
                self._reject(unit.members, reason)
            else:
                self._place(unit)
        return Plan(
            binds=tuple(sorted(self.binds, key=lambda b: b.pod)),
            nominations=tuple(sorted(self.nominations, key=lambda n: n.pod)),
            evictions=tuple(sorted(self.evictions, key=lambda e: e.pod)),
            unschedulable=tuple(sorted(self.unschedulable.values(), key=lambda u: u.pod)),
        )

    def _need(self, unit: _Unit) -> int:
        """Nodes the unit needs now: 1, or a gang's min-available less its members still running."""
        gang = unit.gang
        return unit.need if gang is None else max(gang.min_pending - gang.occupying_now, 0)

    def _usable(self, node: str, unit: _Unit) -> bool:
        """Whether a node may go to this unit: not taken, and not reserved for another pod
        unless this unit's priority is strictly higher."""
        if node in self.ledger.taken:
            return False
        q = self.ledger.reserved.get(node)
        return q is None or unit.priority > q or self.unit_of.get(self.holder[node]) is unit

    def _place(self, unit: _Unit) -> None:
        """Place a unit: its own slots, free nodes, then preemption; else it stays pending."""
        ledger = self.ledger
        slots: list[_Slot] = []
        rest: list[Pod] = []
        for pod in unit.members:
            node = self.reservation.get(pod.key)
            if node is not None and node not in ledger.taken and ledger.state[node] in (_FREE, _TERMINATING):
                slots.append(_Slot(pod, node, waiting=ledger.state[node] == _TERMINATING))
            else:
                rest.append(pod)
        waiting = any(s.waiting for s in slots)
        required = max(self._need(unit) - len(slots), 0)

        # Free nodes first: plain free ones in name order, then those reserved for lower units.
        free: list[str] = []
        while len(free) < len(rest) and (node := ledger.pop_free()) is not None:
            free.append(node)
        if len(free) < len(rest):
            free += self._reserved_free(unit, len(rest) - len(free))

        victims: list[tuple[Pod, str, str]] = []  # (victim, its node, the node it was chosen for)
        freed: list[str] = []
        if len(free) < required:
            short = required - len(free)
            could = 0
            if unit.can_preempt and not waiting:
                could = ledger.lower_count(unit.priority)
                # A cheap upper bound first: nodes of lower pods, and reservations to take over.
                if could + len(ledger.reserved) >= short:
                    freed, victims = self._find_victims(unit, short)
                    could = len(freed)
            if len(freed) < short:
                self._fail(unit, slots, rest, free, min(could, short - 1))
                return

        # Placed: its own slots, then free nodes, then nodes freed by preemption.
        assigned = dict(zip(free + freed, rest, strict=False))
        placements = [(s.pod, s.node) for s in slots] + [(pod, node) for node, pod in assigned.items()]
        for node in [s.node for s in slots] + list(assigned):
            ledger.take(node)
        self._commit_victims(unit, victims, assigned)
        placed = {pod.key for pod, _ in placements}
        extra_reason = None
        for pod in rest:
            if pod.key not in placed:
                extra_reason = extra_reason or self._extra_reason(unit)
                self.unschedulable[pod.key] = Unschedulable(pod.key, extra_reason)
            else:
                self.unschedulable.pop(pod.key, None)
        self._release(unit, keep={n for _, n in placements}, placed={p.key for p, _ in placements})

        if waiting or victims:
            ledger.nominated += len(placements)
            evicted = {v.key for v, _, _ in victims}
            for pod, node in placements:
                self.nominations.append(Nominate(pod.key, node, self._leaving(node, evicted)))
        else:
            self.binds.extend(Bind(pod.key, node) for pod, node in placements)

    def _reserved_free(self, unit: _Unit, count: int) -> list[str]:
        """Free nodes reserved for pods of strictly lower priority, in name order, taken only
        if the unit is placed (`ledger.take` ends the other pod's reservation then)."""
        ledger = self.ledger
        if not ledger.reserved_free or ledger.reserved_prios[0] >= unit.priority:
            return []
        return sorted(
            n for n, q in ledger.reserved.items() if q < unit.priority and ledger.state[n] == _FREE
        )[:count]

    def _find_victims(self, unit: _Unit, short: int) -> tuple[list[str], list[tuple[Pod, str, str]]]:
        """Victims in SPEC order until `short` nodes are free for the unit (fewer if it can't)."""
        ledger = self.ledger
        candidates = ledger.candidates
        chosen: set[str] = set()
        out: dict[int, int] = {}  # gang id -> members chosen
        freed: list[str] = []
        freed_set: set[str] = set()
        victims: list[tuple[Pod, str, str]] = []
        i = ledger.live_from(0)
        while i < len(candidates) and len(freed) < short:
            prio, _, _, node = candidates[i]
            if prio >= unit.priority:
                break
            i = ledger.live_from(i + 1)
            if node in freed_set or not self._usable(node, unit):
                continue
            group = self._eviction_group(node, chosen, out)
            victims += [(pod, pod.node_name, node) for pod in group]
            for n in [node, *sorted({p.node_name for p in group} - {node})]:
                if n in freed_set or n not in self.eligible or not self._usable(n, unit):
                    continue
                if all(o.key in chosen or o.deleting for o in self.occupants[n]):
                    freed.append(n)
                    freed_set.add(n)
        return freed, victims

    def _eviction_group(self, node: str, chosen: set[str], out: dict[int, int]) -> list[Pod]:
        """The occupants of a node, plus every running gang that evicting them would break."""
        group = [p for p in sorted(self.occupants[node], key=lambda p: p.name) if p.key not in chosen]
        chosen.update(p.key for p in group)
        k = 0
        while k < len(group):
            gang = self.gang_of.get(group[k].key)
            k += 1
            if gang is None:
                continue
            out[id(gang)] = out.get(id(gang), 0) + 1
            if gang.staying - out[id(gang)] < gang.min_all:
                for member in sorted(gang.occupying, key=lambda p: p.name):
                    if not member.deleting and member.key not in chosen:
                        chosen.add(member.key)
                        group.append(member)
        return group

    def _commit_victims(
        self, unit: _Unit, victims: list[tuple[Pod, str, str]], assigned: dict[str, Pod]
    ) -> None:
        evicted = {v.key for v, _, _ in victims}
        vacated: set[str] = set()
        for pod, node, cause in victims:
            preemptor = assigned.get(node) or assigned.get(cause) or unit.members[0]
            self.evictions.append(Evict(pod.key, node, preemptor.key))
            gang = self.gang_of.get(pod.key)
            if gang is not None:
                gang.staying -= 1
                gang.evicted += 1
            if node in self.eligible and node not in self.ledger.taken:
                vacated.add(node)
        for node in vacated:
            if all(o.deleting or o.key in evicted for o in self.occupants[node]):
                self.ledger.vacate(node)

    def _leaving(self, node: str, evicted: set[str]) -> tuple[str, ...]:
        """The pods that must leave a node before its nominee can be bound."""
        return tuple(sorted(o.key for o in self.occupants.get(node, ()) if o.deleting or o.key in evicted))

    def _release(self, unit: _Unit, keep: set[str] | None = None, *, placed: Collection[str] = ()) -> None:
        """The unit is done with the reservations it did not use.

        A nominee placed on another node gives its old one back at once. Otherwise the node stays
        reserved for the rest of the pass (SPEC 6: only the nominee, or a unit of strictly higher
        priority, may use it); the plan no longer nominates the pod there, so the shell clears that
        nomination and the next pass has the node free of it.
        """
        for pod in unit.members:
            node = self.reservation.get(pod.key)
            if node is not None and (keep is None or node not in keep):
                del self.reservation[pod.key]
                if pod.key in placed:
                    self._pass_on(node, placed)

    def _pass_on(self, node: str, placed: Collection[str]) -> None:
        """Its holder is placed elsewhere: the node's next nominee holds it, or it goes back."""
        if node not in self.ledger.reserved:
            return  # a unit of higher priority took it over already
        for key in self.nominees.get(node, ()):
            if key != self.holder[node] and key not in placed and key not in self.reservation:
                self.holder[node] = key
                self.reservation[key] = node
                self.ledger.rereserve(node, self.unit_of[key].priority)
                return
        self.ledger.give_back(node)

    def _fail(self, unit: _Unit, slots: list[_Slot], rest: list[Pod], free: list[str], could: int) -> None:
        for node in free:
            if node not in self.ledger.reserved:
                self.ledger.unpop_free(node)
        waiting = any(s.waiting for s in slots)
        reason = self._reason(unit, had=len(slots) + len(free) + could, own=len(slots), waiting=waiting)
        # All or nothing (SPEC 4): a nomination is a placement, so a unit that cannot be placed
        # keeps none, even while victims leave its nodes; the next pass places it afresh.
        self._release(unit)
        self._reject(unit.members, reason)

    def _reject(self, pods: Iterable[Pod], reason: str) -> None:
        self.unschedulable.update((p.key, Unschedulable(p.key, reason)) for p in pods)

    # -- reasons ----------------------------------------------------------------------------

    def _breakdown(self, priority: int, *, lower_note: str | None, own: int = 0) -> str:
        """Why nodes cannot be had by a unit of this priority, kube-scheduler style."""
        ledger = self.ledger
        lower = ledger.lower_count(priority)
        held = len(ledger.taken) - ledger.nominated + ledger.occupied.total - lower
        reserved = len(ledger.reserved) + ledger.nominated - own
        key = ("breakdown", lower, held, reserved, len(ledger.terminating), len(ledger.stuck), lower_note)
        if (text := self._texts.get(key)) is not None:
            return text
        counts = [
            (self.not_selected, "didn't match the scheduler's node selector"),
            (self.not_ready, "were not ready"),
            (self.cordoned, "were unschedulable"),
            (held, "hold a pod of equal or higher priority"),
            (reserved, "are reserved for nominated pods"),
            (len(ledger.terminating), "hold a terminating pod"),
            (len(ledger.stuck), f"hold a pod still terminating {self.stuck_after:g}s after its grace period"),
        ]
        if lower_note is not None:
            counts.append((lower, f"hold a pod of lower priority, {lower_note}"))
        counts = [(n, text) for n, text in counts if n > 0]
        counts.sort(key=lambda c: (-c[0], c[1]))
        text = self._texts[key] = ", ".join(f"{n} node(s) {text}" for n, text in counts)
        return text

    def _reason(self, unit: _Unit, *, had: int, own: int, waiting: bool) -> str:
        """Why a unit stays pending; its own reserved nodes count as nodes it can have."""
        lower_note = None
        if not unit.can_preempt:
            lower_note = "and preemptionPolicy is Never"
        elif waiting:
            lower_note = "which it may preempt once its preempted pods have left"
        detail = self._breakdown(unit.priority, lower_note=lower_note, own=own)
        if unit.gang is None:
            key: tuple[object, ...] = ("single", detail)
            if (text := self._texts.get(key)) is None:
                text = self._texts[key] = f"0/{self.node_total} nodes are available" + (
                    f": {detail}." if detail else "."
                )
            return text
        need = self._need(unit)
        text = f"gang {unit.gang.label} needs {need} nodes, {min(had, need - 1)} can be had"
        return f"{text}: {detail}." if detail else text

    def _extra_reason(self, unit: _Unit) -> str:
        detail = self._breakdown(
            unit.priority, lower_note="and members beyond the gang's min-available do not preempt"
        )
        return f"0/{self.node_total} nodes are available: {detail}."
