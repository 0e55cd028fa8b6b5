"""Eligible nodes: what each holds, and who may use it as the pass goes on (SPEC 2 and 6).

Every eligible node is in exactly one `NodeState`; `TRANSITIONS` is every way a state can
change, and `Nodes.move` is the only code that changes one. A node named by a pending pod's
`status.nominatedNodeName` starts the pass *reserved* for that pod: only its nominee, or a unit
of strictly higher priority, may use it (SPEC 6). Who holds each reservation, who else is
nominated there and may take it over, also lives here: one owner for "who may use this node".

Sets of nodes are Python ints used as bit sets, bit i standing for the i-th eligible node in
name order, so "the first free node", "how many nodes hold pods of lower priority" are a few
machine-word operations even on thousands of nodes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from custom_scheduler.model import Node, Pod
from custom_scheduler.planner.units import Unit, Workload
from custom_scheduler.settings import Selector


class NodeState(enum.IntEnum):
    """What an eligible node holds, and whether the pass has given it away.

    (Integers only so that the states index lists: an Enum's hash runs in Python, and the pass
    asks for states hundreds of thousands of times.)
    """

    FREE = 0  # none of our pods
    RUNNING = 1  # our pods, none of them terminating: a place to preempt
    TERMINATING = 2  # only our pods on their way out
    STUCK = 3  # one of them still there `stuck_after` past its deletion time
    RESERVED_FREE = 4  # the same four, while a nominee holds the node
    RESERVED_RUNNING = 5
    RESERVED_TERMINATING = 6
    RESERVED_STUCK = 7
    BOUND = 8  # this pass binds a pod here
    NOMINATED = 9  # this pass nominates a pod here


class Move(enum.Enum):
    """What the pass does to a node."""

    BIND = "bind"  # a pod is bound here now
    NOMINATE = "nominate"  # a pod is nominated here: its pods are evicted, or its gang waits
    VACATE = "vacate"  # its pods are evicted, and nobody goes there this pass
    RELEASE = "release"  # its reservation ends before the pass does


S, M = NodeState, Move

# Everything that can happen to a node in a pass. What is missing cannot happen: a pod is never
# bound next to one of ours (RUNNING, TERMINATING: only nominated), a stuck node is never used.
TRANSITIONS: Final[Mapping[tuple[NodeState, Move], NodeState]] = {
    (S.FREE, M.BIND): S.BOUND,
    (S.FREE, M.NOMINATE): S.NOMINATED,
    (S.RUNNING, M.NOMINATE): S.NOMINATED,
    (S.RUNNING, M.VACATE): S.TERMINATING,
    (S.TERMINATING, M.VACATE): S.TERMINATING,
    (S.STUCK, M.VACATE): S.STUCK,
    (S.RESERVED_FREE, M.BIND): S.BOUND,
    (S.RESERVED_FREE, M.NOMINATE): S.NOMINATED,
    (S.RESERVED_FREE, M.RELEASE): S.FREE,
    (S.RESERVED_RUNNING, M.NOMINATE): S.NOMINATED,
    (S.RESERVED_RUNNING, M.VACATE): S.RESERVED_TERMINATING,
    (S.RESERVED_RUNNING, M.RELEASE): S.RUNNING,
    (S.RESERVED_TERMINATING, M.NOMINATE): S.NOMINATED,
    (S.RESERVED_TERMINATING, M.VACATE): S.RESERVED_TERMINATING,
    (S.RESERVED_STUCK, M.VACATE): S.RESERVED_STUCK,
    (S.RESERVED_TERMINATING, M.RELEASE): S.TERMINATING,
    (S.RESERVED_STUCK, M.RELEASE): S.STUCK,
}

# A nomination at the start of the pass reserves a node, whatever it holds.
RESERVED_AS: Final[Mapping[NodeState, NodeState]] = {
    S.FREE: S.RESERVED_FREE,
    S.RUNNING: S.RESERVED_RUNNING,
    S.TERMINATING: S.RESERVED_TERMINATING,
    S.STUCK: S.RESERVED_STUCK,
}
RESERVED_STATES: Final = frozenset(RESERVED_AS.values())
RUNNING_STATES: Final = frozenset({S.RUNNING, S.RESERVED_RUNNING})
STUCK_STATES: Final = frozenset({S.STUCK, S.RESERVED_STUCK})


class Eligibility(NamedTuple):
    """The snapshot's nodes: the eligible ones in name order, and why the others are not."""

    nodes: list[Node]
    total: int
    not_selected: int  # do not match --node-selector
    not_ready: int
    cordoned: int


def eligible_nodes(nodes: Iterable[Node], selector: Selector) -> Eligibility:
    """SPEC 2: Ready, not cordoned, matching `--node-selector` (one entry per name)."""
    by_name = {n.name: n for n in sorted(nodes, key=lambda n: (n.name, n.ready, n.unschedulable))}
    eligible: list[Node] = []
    not_selected = not_ready = cordoned = 0
    for n in by_name.values():
        if selector.requirements and not selector.matches(n.labels):
            not_selected += 1
        elif not n.ready:
            not_ready += 1
        elif n.unschedulable:
            cordoned += 1
        else:
            eligible.append(n)
    return Eligibility(eligible, len(by_name), not_selected, not_ready, cordoned)


class Holder(NamedTuple):
    """A pending pod that holds a node by its nomination, with its unit and the unit's priority."""

    pod: str
    unit: Unit
    priority: int


@dataclass(frozen=True, slots=True)
class Occupied:
    """A running node as a place to preempt: its pods' protected priority and what they lose."""

    node: int
    level: int  # the highest protected priority among its pods
    gang_member: bool  # one of them belongs to a gang
    newest: float  # the latest creation time among them


class Nodes:
    """The eligible nodes' states and reservations, changed only through `move` and the
    reservation methods."""

    def __init__(
        self,
        nodes: list[Node],
        workload: Workload,
        *,
        now: float,
        stuck_after: float,
        may_run: Callable[[Pod, int], bool] = lambda pod, node: True,
    ) -> None:
        names = self.names = [n.name for n in nodes]
        self.index = {name: i for i, name in enumerate(names)}
        self.state: list[NodeState] = []
        self.bits = [0] * len(NodeState)  # by state: the nodes in it
        self.counts = [0] * len(NodeState)  # by state: how many
        # Running nodes that are not reserved, by level: bit sets, for counting by priority.
        self.running_at: dict[int, int] = {}
        self.occupied: list[Occupied] = []  # every running node, reserved or not
        self.level: dict[int, int] = {}
        # Answers that depend on the states, kept until the next change (`version` counts them):
        # once the nodes are full, thousands of units in a row ask the same questions.
        self.version = 0
        self._below: dict[int, tuple[int, int]] = {}  # priority -> (nodes, count)
        self._reserved_free: dict[int, list[int]] = {}  # priority -> reserved_free_below
        self._held_below: dict[int, int] = {}  # priority -> held_below
        # Running nodes held by a nominee, by the holder's priority: who may take them over.
        self.held_at: dict[int, int] = {}
        for i, name in enumerate(names):
            pods = workload.occupants.get(name)
            if not pods:
                state = S.FREE
            elif any(_stuck(p, now, stuck_after) for p in pods):
                state = S.STUCK
            elif any(p.deleting for p in pods):
                state = S.TERMINATING
            else:
                state = S.RUNNING
                level = max(workload.protected(p) for p in pods)
                member = any(p.key in workload.gang_of for p in pods)
                self.occupied.append(Occupied(i, level, member, max(p.creation for p in pods)))
                self.level[i] = level
            self.state.append(state)
            self.bits[state] |= 1 << i
            self.counts[state] += 1
            if state is S.RUNNING:
                self.running_at[self.level[i]] = self.running_at.get(self.level[i], 0) | 1 << i
        # Reservations: a pending pod's nominated node, if eligible and one it may run on (SPEC 6:
        # it gives back a node it can no longer run on); of several pods naming one node, the
        # first unit in pass order holds it and the others wait their turn.
        self.holder: dict[int, Holder] = {}
        self.nominees: dict[int, list[Holder]] = {}
        self.reservation: dict[str, int] = {}  # pod key -> the node it holds
        for unit in workload.units:
            for pod in unit.members:
                node = self.index.get(pod.nominated_node) if pod.nominated_node else None
                if node is None or not may_run(pod, node):
                    continue
                holder = Holder(pod.key, unit, unit.priority)
                self.nominees.setdefault(node, []).append(holder)
                if node not in self.holder:
                    self.holder[node] = holder
                    self.reservation[pod.key] = node
                    self._set(node, RESERVED_AS[self.state[node]])

    # -- states ------------------------------------------------------------------------------

    def _set(self, node: int, state: NodeState) -> None:
        old = self.state[node]
        bit = 1 << node
        self.bits[old] &= ~bit
        self.bits[state] |= bit
        self.counts[old] -= 1
        self.counts[state] += 1
        self.state[node] = state
        if old is S.RUNNING:
            self.running_at[self.level[node]] &= ~bit
        if state is S.RUNNING:
            self.running_at[self.level[node]] |= bit
        if old is S.RESERVED_RUNNING:
            self.held_at[self.holder[node].priority] &= ~bit
        if state is S.RESERVED_RUNNING:
            priority = self.holder[node].priority
            self.held_at[priority] = self.held_at.get(priority, 0) | bit
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._below.clear()
        self._reserved_free.clear()
        self._held_below.clear()

    def held_below(self, priority: int) -> int:
        """Running nodes reserved for units of priority below `priority` (a unit that outranks
        their holders may take them over)."""
        below = self._held_below.get(priority)
        if below is None:
            below = self._held_below[priority] = _union_below(self.held_at, priority)
        return below

    def move(self, node: int, move: Move) -> None:
        """Change a node's state as `TRANSITIONS` allows (anything else is a bug: KeyError)."""
        self._set(node, TRANSITIONS[(self.state[node], move)])
        if move is not M.VACATE:
            self.holder.pop(node, None)

    def count(self, *states: NodeState, within: int | None = None) -> int:
        """How many nodes are in any of these states (of those `within`, a bit set; None: all)."""
        if within is None:
            counts = self.counts
            return sum(counts[s] for s in states)
        bits = self.bits
        return sum((bits[s] & within).bit_count() for s in states)

    def first(self, state: NodeState, count: int, within: int | None = None) -> list[int]:
        """Up to `count` nodes in this state (of those `within`), in name order."""
        found: list[int] = []
        bits = self.bits[state] if within is None else self.bits[state] & within
        while bits and len(found) < count:
            low = bits & -bits
            found.append(low.bit_length() - 1)
            bits ^= low
        return found

    def running_below(self, priority: int) -> int:
        """Running, unreserved nodes whose pods all have a protected priority below `priority`."""
        return self._running_below(priority)[0]

    def count_running_below(self, priority: int, within: int | None = None) -> int:
        """How many nodes `running_below` holds (of those `within`)."""
        below = self._running_below(priority)
        return below[1] if within is None else (below[0] & within).bit_count()

    def _running_below(self, priority: int) -> tuple[int, int]:
        below = self._below.get(priority)
        if below is None:
            bits = _union_below(self.running_at, priority)
            below = self._below[priority] = (bits, bits.bit_count())
        return below

    def reserved(self, within: int | None = None) -> int:
        """Nodes held by a nominee (of those `within`)."""
        if within is not None:
            return self.count(*RESERVED_STATES, within=within)
        counts = self.counts
        return (
            counts[S.RESERVED_FREE]
            + counts[S.RESERVED_RUNNING]
            + counts[S.RESERVED_TERMINATING]
            + counts[S.RESERVED_STUCK]
        )

    # -- reservations ------------------------------------------------------------------------

    def usable(self, node: int, unit: Unit) -> bool:
        """Whether the node may go to this unit: not given away, and not reserved for another
        unit unless this one's priority is strictly higher."""
        state = self.state[node]
        if state is S.BOUND or state is S.NOMINATED:
            return False
        holder = self.holder.get(node)
        return holder is None or unit.priority > holder.priority or holder.unit is unit

    def reserved_free_below(self, priority: int, count: int, within: int | None = None) -> list[int]:
        """Up to `count` free nodes reserved for units of strictly lower priority (of those
        `within`), in name order."""
        if within is not None:
            return [n for n in self.reserved_free_below(priority, len(self.names)) if within >> n & 1][:count]
        found = self._reserved_free.get(priority)
        if found is None:
            found = []
            bits = self.bits[S.RESERVED_FREE]
            while bits:
                low = bits & -bits
                node = low.bit_length() - 1
                if self.holder[node].priority < priority:
                    found.append(node)
                bits ^= low
            self._reserved_free[priority] = found
        return found[:count]

    def forget(self, pod: str) -> int | None:
        """The pod no longer counts as this node's holder (the node stays reserved); its node."""
        return self.reservation.pop(pod, None)

    def pass_on(self, node: int, placed: Iterable[str]) -> None:
        """Its holder was placed elsewhere: the node's next nominee holds it, or it is released."""
        if self.state[node] not in RESERVED_STATES:
            return  # a unit of higher priority took it over already
        placed = set(placed)
        current = self.holder[node].pod
        for nominee in self.nominees.get(node, ()):
            if nominee.pod != current and nominee.pod not in placed and nominee.pod not in self.reservation:
                if self.state[node] is S.RESERVED_RUNNING:
                    self.held_at[self.holder[node].priority] &= ~(1 << node)
                    self.held_at[nominee.priority] = self.held_at.get(nominee.priority, 0) | 1 << node
                self.holder[node] = nominee
                self.reservation[nominee.pod] = node
                self._changed()
                return
        self.move(node, M.RELEASE)


def _stuck(pod: Pod, now: float, stuck_after: float) -> bool:
    """Terminating, and still there `stuck_after` seconds past its deletionTimestamp."""
    return pod.deleting and pod.deletion_time > 0 and pod.deletion_time + stuck_after < now


def _union_below(by_priority: dict[int, int], priority: int) -> int:
    """The nodes of the bit sets kept under priorities below `priority`."""
    union = 0
    for level, bits in by_priority.items():
        if level < priority:
            union |= bits
    return union
