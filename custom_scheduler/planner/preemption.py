"""Preemption: which running pods to evict so that a unit fits (SPEC 6).

1. Candidates are running nodes the unit may use (feasible for it, not reserved for a unit it
   does not outrank) whose pods' protected priority is strictly below the unit's.
2. Lowest protected priority first: every level below the highest one that must be touched
   gives all it has; at that level the **fewest pods** are evicted (a small knapsack over
   group sizes: a running gang evicted whole counts all its members), then pods outside gangs
   before gang members, then the newest pods (least work lost), then node name.
3. Gang integrity: a member whose eviction would leave its running gang below min-available
   goes only with the whole gang, whose nodes are all freed, for the unit or for anyone.
4. A lower-level group the chosen set no longer needs is spared. The caller commits the
   victims only if the whole unit then fits (all or nothing).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from custom_scheduler.model import Constraints, Pod
from custom_scheduler.planner.matching import match
from custom_scheduler.planner.nodes import RUNNING_STATES, Nodes, NodeState
from custom_scheduler.planner.units import Gang, Unit, Workload

S = NodeState
MAX_EXACT_GANGS = 10  # running gangs at one level judged in every combination (2^10 at most)


class Victim(NamedTuple):
    """A pod to evict, and the node whose choice pulled it in."""

    pod: Pod
    cause: int


@dataclass(slots=True)
class Found:
    """The nodes a search freed for the unit and the pods it evicts for them; or, when it found
    too few, only how many (`count`). `freed_by` says which nodes each choice freed (a gang
    evicted whole frees several)."""

    freed: list[int] = field(default_factory=list)
    victims: list[Victim] = field(default_factory=list)
    count: int = 0
    freed_by: dict[int, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    """What one choice evicts and frees: a node's pods, a member its gang can spare, or a running
    gang evicted whole."""

    pods: list[Pod]
    freed: list[int]  # nodes the unit may use that this frees
    cause: int  # the node that names it

    @property
    def cost(self) -> int:
        """Pods evicted (SPEC 6: the fewest, at the highest level touched)."""
        return len(self.pods)


@dataclass(slots=True, eq=False)
class _GangAt:
    """A running gang as a choice: its members, and the nodes evicting it would free."""

    gang: Gang
    members: list[Pod]  # occupying, by name
    clean: int  # eligible nodes holding only this gang's live pods of ours
    alone: int  # of those, the nodes where one member is our only live pod


class _Option(NamedTuple):
    """A gang at the moment of a search: what evicting it costs and gains."""

    at: _GangAt
    cost: int  # its live members
    usable: int  # the nodes it would free that the unit may use
    spare: int  # members it can lose one by one (beyond its min-available), on usable nodes


@dataclass(slots=True)
class _Level:
    """The running nodes whose pods share one protected priority."""

    singles: list[int] = field(default_factory=list)  # nodes of pods outside gangs: newest first
    single_bits: int = 0
    gangs: list[_GangAt] = field(default_factory=list)  # newest first
    bits: int = 0  # every node a choice at this level could free
    start: dict[object, int] = field(default_factory=dict)  # per scope: singles skipped for good


class VictimSearch:
    """The running nodes by level, searched by every unit that must preempt in a pass."""

    def __init__(self, nodes: Nodes, workload: Workload) -> None:
        self.nodes = nodes
        self.workload = workload
        self.levels: dict[int, _Level] = {}
        seen: dict[int, _GangAt] = {}
        for o in sorted(nodes.occupied, key=lambda o: (-o.newest, o.node)):
            level = self.levels.setdefault(o.level, _Level())
            live = _live(workload.occupants[nodes.names[o.node]])
            gangs = {id(g): g for p in live if (g := workload.gang_of.get(p.key)) is not None}
            if not gangs:
                level.singles.append(o.node)
                level.single_bits |= 1 << o.node
                level.bits |= 1 << o.node
                continue
            for gang in gangs.values():
                at = seen.get(id(gang))
                if at is None:
                    members = sorted(gang.occupying, key=lambda p: p.name)
                    at = seen[id(gang)] = _GangAt(gang, members, 0, 0)
                    self.levels.setdefault(gang.priority, _Level()).gangs.append(at)
                if len(gangs) == 1 and all(workload.gang_of.get(p.key) is gang for p in live):
                    at.clean |= 1 << o.node
                    at.alone |= (len(live) == 1) << o.node
        for level in self.levels.values():
            for at in level.gangs:
                level.bits |= at.clean
        self.order = sorted(self.levels)
        self.evicted: set[str] = set()  # pods this pass evicts (the pass adds them as it commits)
        # (nodes.version, priority, scope) -> nodes a search found before running out: a unit of
        # that priority and scope that holds no reservation can free no more, until a node changes.
        self._exhausted: dict[tuple[int, int, object], int] = {}
        self._usable: dict[tuple[int, int, object], int] = {}

    def find(
        self,
        unit: Unit,
        short: int,
        *,
        within: int | None = None,
        scope: object = None,
        skip: frozenset[int] = frozenset(),
    ) -> Found:
        """Victims freeing `short` nodes the unit may use (`within`; None: any) in SPEC 6's order
        and number, or how many it can free if fewer; never choosing the nodes in `skip`.

        Units of one priority and `scope` (a key for `within`) share what a search that ran out
        of candidates found.
        """
        nodes = self.nodes
        holds = bool(skip) or scope is None or any(pod.key in nodes.reservation for pod in unit.members)
        moment = (nodes.version, unit.priority, scope)
        if not holds and (can := self._exhausted.get(moment)) is not None and can < short:
            return Found(count=can)
        usable = self._may_use(unit, within, None if holds else moment)
        for node in skip:
            usable &= ~(1 << node)
        below: list[_Group] = []
        gained = 0
        for level in self._levels_below(unit.priority, usable):
            wanted = short - gained
            singles = (level.single_bits & usable).bit_count()
            if singles >= wanted:
                # Pods outside gangs: one pod for one node, the fewest there can be.
                picked = self._singles(level, usable, scope if not holds else None, wanted, within)
                return self._found(below + picked)
            offered = (level.bits & usable).bit_count()  # gangs' clean nodes are their own
            if gained + offered < short:
                below += self._singles(level, usable, None, singles)
                below += [self._whole(o, usable) for o in self._options(level, usable)]
                gained += offered
                continue
            chosen = self._fewest(level, usable, singles, self._options(level, usable, wanted), wanted)
            return self._found(_spare(below, chosen, short))
        if not holds:
            self._exhausted[moment] = gained
        return Found(count=gained)

    def find_for_members(
        self,
        unit: Unit,
        members: Sequence[Pod],
        free: Sequence[int],
        fits: Mapping[Constraints, int],
        *,
        required: int,
    ) -> Found:
        """Victims so that `required` of `members` (whose constraints differ) can be matched to
        distinct nodes among `free` and the freed ones, in SPEC 6's order and number.

        Whether a set of nodes serves is a matching, not a count, so a level's choices are
        judged by the size of the largest matching they allow: every running gang of the level
        evicted whole or not (each subset, while there are few: an exact answer), then nodes of
        one pod each (pods outside gangs, then members gangs can spare), newest first, taken
        while they let one more member in. Choices of lower levels the rest can do without are
        spared.
        """
        union = 0
        for bits in fits.values():
            union |= bits
        usable = self._may_use(unit, union, None)

        def matched(nodes: Iterable[int]) -> int:
            return len(match(members, sorted(set(nodes)), fits))

        below: list[_Group] = []
        held = list(free)
        for level in self._levels_below(unit.priority, usable):
            options = self._options(level, usable)
            singles = self._singles(level, usable, None, len(level.singles))
            everything = held + [n for g in singles for n in g.freed]
            everything += [n for o in options for n in nodes_of(o.usable)]
            if matched(everything) < required:
                below += singles + [self._whole(o, usable) for o in options]
                held = everything
                continue
            best: tuple[tuple[int, int], list[_Group]] | None = None
            for wholes in _subsets(options, limit=MAX_EXACT_GANGS):
                chosen = [self._whole(o, usable) for o in wholes]
                taken = {id(o.at) for o in wholes}
                # Nodes of one pod each: pods outside gangs (no owner), then every member a gang
                # could spare (at most its slack of them are taken).
                ones: list[tuple[_Group, int | None]] = [(g, None) for g in singles]
                for o in options:
                    if id(o.at) not in taken and o.spare:
                        ones += [(g, id(o.at)) for g in self._spares(o, usable, len(o.at.members))]
                slack = {id(o.at): o.spare for o in options}
                nodes = held + [n for g in chosen for n in g.freed]
                have = matched(nodes)
                # Kinds of node that let no one more in: they never will (a matching's size is
                # submodular), so one try per kind.
                useless: set[tuple[bool, ...]] = set()
                for group, owner in ones:
                    if have >= required:
                        break
                    if owner is not None and not slack[owner]:
                        continue
                    kind = tuple(bool(bits >> group.cause & 1) for bits in fits.values())
                    if kind in useless:
                        continue
                    if matched([*nodes, group.cause]) > have:
                        chosen.append(group)
                        nodes.append(group.cause)
                        have += 1
                        if owner is not None:
                            slack[owner] -= 1
                    else:
                        useless.add(kind)
                if have < required:
                    continue
                outside = {id(g) for g in singles}
                cost = (sum(g.cost for g in chosen), sum(g.cost for g in chosen if id(g) not in outside))
                if best is None or cost < best[0]:
                    best = (cost, chosen)
            if best is None:
                break
            kept = list(below)
            nodes = [*free, *(n for g in best[1] for n in g.freed)]
            for group in reversed(below):  # spare what the rest can do without, higher levels first
                others = [n for g in kept if g is not group for n in g.freed]
                if matched(nodes + others) >= required:
                    kept.remove(group)
            return self._found(kept + best[1])
        return Found(count=max(matched(held) - matched(free), 0))

    # -- the candidates ----------------------------------------------------------------------

    def _levels_below(self, priority: int, usable: int) -> Iterator[_Level]:
        """The levels below `priority` with a node in `usable`, lowest first (SPEC 6's order)."""
        for at in self.order:
            if at >= priority:
                return
            level = self.levels[at]
            if level.bits & usable:
                yield level

    def _may_use(self, unit: Unit, within: int | None, moment: tuple[int, int, object] | None) -> int:
        """Running nodes the unit may take once their pods are gone: not reserved for a unit it
        does not outrank, and among those it may run on."""
        if moment is not None and (cached := self._usable.get(moment)) is not None:
            return cached
        nodes = self.nodes
        usable = nodes.bits[S.RUNNING] | nodes.held_below(unit.priority)
        for pod in unit.members:  # its own reservations, whatever their holders' priority
            node = nodes.reservation.get(pod.key)
            if node is not None and nodes.state[node] is S.RESERVED_RUNNING:
                usable |= 1 << node
        if within is not None:
            usable &= within
        if moment is not None:
            self._usable[moment] = usable
        return usable

    def _singles(
        self, level: _Level, usable: int, scope: object, wanted: int, within: int | None = None
    ) -> list[_Group]:
        """The first `wanted` usable nodes of pods outside gangs, newest pods first.

        Per scope (`within`), the front of the list that no unit of it can ever take (nodes no
        longer running, or where its pods may not run) is skipped for good.
        """
        nodes, occupants = self.nodes, self.workload.occupants
        picked: list[_Group] = []
        if wanted <= 0:
            return picked
        position = level.start.get(scope, 0) if scope is not None else 0
        skipped = position  # the front no unit of this scope can take, so far
        state, singles = nodes.state, level.singles
        for index in range(position, len(singles)):
            node = singles[index]
            if not usable >> node & 1:
                if skipped == index and (
                    state[node] not in RUNNING_STATES or (within is not None and not within >> node & 1)
                ):
                    skipped = index + 1
                continue
            picked.append(_Group(_live(occupants[nodes.names[node]]), [node], node))
            if len(picked) == wanted:
                break
        if scope is not None and skipped > position:
            level.start[scope] = skipped
        return picked

    def _options(self, level: _Level, usable: int, wanted: int | None = None) -> list[_Option]:
        """The level's running gangs the unit could gain nodes from, as they stand now.

        With `wanted`, at most that many gangs alike (cost, nodes, spare): they differ only in
        age, a choice freeing `wanted` nodes takes no more of them, and the knapsack keeps to the
        first (newest) on ties.
        """
        options = []
        alike: dict[tuple[int, int, int], int] = {}
        for at in level.gangs:
            gain = at.clean & usable
            if not gain:
                continue
            live = at.gang.staying
            spare = 0
            if live > at.gang.min_all:
                spare = min(live - at.gang.min_all, (at.alone & usable).bit_count())
            if wanted is not None:
                shape = (live, gain.bit_count(), spare)
                if (seen := alike.get(shape, 0)) >= wanted:
                    continue
                alike[shape] = seen + 1
            options.append(_Option(at, live, gain, spare))
        return options

    def _live_members(self, at: _GangAt) -> list[Pod]:
        return [p for p in at.members if not p.deleting and p.key not in self.evicted]

    def _whole(self, option: _Option, usable: int) -> _Group:
        freed = nodes_of(option.usable)
        return _Group(self._live_members(option.at), freed, freed[0])

    def _spares(self, option: _Option, usable: int, count: int) -> list[_Group]:
        """`count` members the gang can spare, on usable nodes, newest first."""
        nodes = self.nodes
        members = {nodes.index.get(p.node_name): p for p in self._live_members(option.at)}
        alone = [(members[n], n) for n in nodes_of(option.at.alone & usable) if n in members]
        alone.sort(key=lambda a: (-a[0].creation, a[1]))
        return [_Group([pod], [node], node) for pod, node in alone[:count]]

    def _fewest(
        self, level: _Level, usable: int, singles: int, options: list[_Option], wanted: int
    ) -> list[_Group]:
        """The fewest pods freeing `wanted` nodes at this level, then the fewest gang members,
        then the newest: a multiple-choice knapsack by nodes freed (at most `wanted`) over pods
        outside gangs (one pod a node, the best there is), and for each gang its spare members
        or the whole gang (one or the other)."""
        gangs = [(o.cost, o.usable.bit_count(), o.spare) for o in options]
        best, decisions = _knapsack(singles, gangs, wanted)
        if best is None:
            return []
        chosen: list[_Group] = []
        x = wanted
        for option, step in zip(reversed(options), reversed(decisions), strict=True):
            taken = step[x]
            if isinstance(taken, tuple):
                chosen.append(self._whole(option, usable))
                x = taken[1]
            elif isinstance(taken, int):
                chosen += self._spares(option, usable, taken)
                x -= taken
        return self._singles(level, usable, None, x) + chosen

    # -- the result --------------------------------------------------------------------------

    def _found(self, groups: Iterable[_Group]) -> Found:
        found = Found()
        taken: set[int] = set()
        for group in groups:
            found.victims += [Victim(pod, group.cause) for pod in group.pods]
            fresh = [n for n in group.freed if n not in taken]
            taken.update(fresh)
            found.freed += fresh
            found.freed_by[group.cause] = fresh
        found.count = len(found.freed)
        return found


def _live(pods: Sequence[Pod]) -> list[Pod]:
    """Pods of a node that an eviction would remove (those terminating go anyway), by name."""
    return sorted((p for p in pods if not p.deleting), key=lambda p: p.name)


def _subsets(options: list[_Option], *, limit: int) -> Iterable[tuple[_Option, ...]]:
    """Every subset of the options while they are at most `limit`, fewest first; beyond, the
    empty one and each one alone (a bound on the work, not an exact answer)."""
    if len(options) > limit:
        yield ()
        for option in options:
            yield (option,)
        return
    for size in range(len(options) + 1):
        yield from itertools.combinations(options, size)


def nodes_of(bits: int) -> list[int]:
    """The node indices of a bit set, in name order."""
    found = []
    while bits:
        low = bits & -bits
        found.append(low.bit_length() - 1)
        bits ^= low
    return found


def _knapsack(
    singles: int, gangs: Sequence[tuple[int, int, int]], wanted: int
) -> tuple[tuple[int, int] | None, list[list[object]]]:
    """Min (pods, gang members) to free `wanted` nodes from `singles` one-pod nodes and gangs
    given as (cost, nodes freed whole, members spare one by one); with, per gang and count of
    nodes, the choice made: None (nothing), k (k spare members) or ("whole", previous count)."""
    infinite = (1 << 60, 1 << 60)
    best = [infinite] * (wanted + 1)
    for count in range(min(singles, wanted) + 1):
        best[count] = (count, 0)
    decisions: list[list[object]] = []
    for cost, gain, spare in gangs:
        step: list[object] = [None] * (wanted + 1)
        new = list(best)
        if spare:
            # k spare members: k pods, k gang members, k nodes (a sliding minimum over k).
            window: deque[tuple[tuple[int, int], int]] = deque()
            for x in range(wanted + 1):
                value = (best[x][0] - x, best[x][1] - x) if best[x] != infinite else infinite
                while window and window[-1][0] >= value:
                    window.pop()
                window.append((value, x))
                while window[0][1] < x - spare:
                    window.popleft()
                low, at = window[0]
                if low != infinite and at < x and (low[0] + x, low[1] + x) < new[x]:
                    new[x], step[x] = (low[0] + x, low[1] + x), x - at
        for y in range(wanted + 1):
            if best[y] != infinite:
                x = min(y + gain, wanted)
                candidate = (best[y][0] + cost, best[y][1] + cost)
                if candidate < new[x]:
                    new[x], step[x] = candidate, ("whole", y)
        decisions.append(step)
        best = new
    return (best[wanted] if best[wanted] != infinite else None), decisions


def _spare(below: list[_Group], chosen: list[_Group], short: int) -> list[_Group]:
    """Spare the groups of lower levels that the rest no longer needs (highest level first,
    biggest first): every eviction serves the unit."""
    if not chosen:
        return []
    total = sum(len(g.freed) for g in below) + sum(len(g.freed) for g in chosen)
    kept = list(below)
    for group in reversed(below):  # levels were added lowest first
        if total - len(group.freed) >= short:
            kept.remove(group)
            total -= len(group.freed)
    return kept + chosen
