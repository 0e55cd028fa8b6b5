"""SPEC 9.8, 9.9 and 9.10 (v2), and every single-pass invariant on every pass of a run.

Rules that span passes are checked by driving `plan` pass after pass (`driver.Driver`): apply each
plan as the shell would, let victims leave and work finish, plan again. The checkers are written
from SPEC alone (sections 4 to 6a define the words they use), not from the planner's code, so that
they check it. Each takes a run (the `Step`s of a driver) or one pass and returns the violations it
finds, each a sentence that quotes the rule; `test_passes_examples.py` checks that they catch what
they should, and pins named cases.
"""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custom_scheduler.model import PREEMPT_NEVER, Constraints, Node, Plan, Pod, Snapshot
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings
from tests.unit.builders import node, pod
from tests.unit.driver import Arrival, Driver, Step
from tests.unit.strategies import GPU, PLACEMENT, SCOPES, TAINTS, describe, make_cluster
from tests.unit.test_invariants import INV2, Unit, View, check_pass

INV8 = (
    "SPEC 9.8: no eviction is wasted: every node freed by an eviction goes to its preemptor's unit or "
    "to a strictly higher unit that took it over"
)
INV9 = (
    "SPEC 9.9: no starvation: a unit that became the reserving unit is bound once enough of its "
    "feasible nodes have been freed"
)
INV10 = (
    "SPEC 9.10: fewest victims: at the highest protected priority that a preemption touches, no other "
    "valid choice evicts fewer pods"
)
LOWEST = "SPEC 6: lowest protected priority first: no valid choice touches only lower priorities"
RESERVE = "SPEC 6a: at most one unit reserves, after --reserve-after, on free feasible nodes"
SETTLES = "SPEC 9.8: a run in which nothing changes but victims leaving settles (evictions stop)"

# INVARIANT_EXAMPLES=5000 makes a deeper hunt (as in test_invariants); a run is a few dozen passes,
# so the run-based properties take a sixth of it.
EXAMPLES = int(os.environ.get("INVARIANT_EXAMPLES", "150"))
RUNS = settings(
    max_examples=max(EXAMPLES // 6, 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ONE_PASS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TICK = 5.0


# --- SPEC's words that span a pass: units, pass order, need, waiting --------------------------------


def placements(result: Plan) -> dict[str, str]:
    """Pod -> node, for every bind and nomination of a plan."""
    return {b.pod: b.node for b in result.binds} | {n.pod: n.node for n in result.nominations}


def pending_units(view: View) -> dict[Unit, list[Pod]]:
    """SPEC 4: the units with pending members (valid pods only), members in (creation, name) order."""
    units: dict[Unit, list[Pod]] = defaultdict(list)
    for p in view.pending.values():
        if view.invalid(p) is None:
            units[view.unit(p)].append(p)
    return {u: sorted(ms, key=lambda p: (p.creation, p.name)) for u, ms in units.items()}


def pass_order(view: View, units: dict[Unit, list[Pod]]) -> list[Unit]:
    """SPEC 5.1: higher priority first, then the older (a gang: its oldest pending member), then
    namespace, then name (a gang's group-name)."""
    return sorted(units, key=lambda u: (-view.unit_priority(units[u][0]), units[u][0].creation, u[1], u[2]))


def need(view: View, unit: Unit, members: Sequence[Pod]) -> int:
    """SPEC 5.3: 1, or a gang's min-available less its occupying members."""
    if unit[0] == "pod":
        return 1
    gang = (unit[1], unit[2])
    occupying = sum(1 for m in view.gangs[gang] if m.key in view.occupying)
    return max(view.min_available(gang) - occupying, 0)


def waiting_since(view: View, unit: Unit, members: Sequence[Pod]) -> float:
    """SPEC 6a: a single pod waits since its creation, a gang since the member that completed its
    quorum was created (infinity: no quorum yet)."""
    if unit[0] == "pod":
        return members[0].creation
    gang = (unit[1], unit[2])
    times = sorted(m.creation for m in view.gangs[gang])
    quorum = view.min_available(gang)
    return times[quorum - 1] if len(times) >= quorum else math.inf


def max_matching(pods: Sequence[Pod], nodes: Iterable[str], ok: Callable[[Pod, str], bool]) -> int:
    """How many of `pods` can go to distinct `nodes` at once (SPEC 4 'members that differ')."""
    names, owner = sorted(nodes), dict[str, int]()

    def augment(i: int, seen: set[str]) -> bool:
        for n in names:
            if n in seen or not ok(pods[i], n):
                continue
            seen.add(n)
            if n not in owner or augment(owner[n], seen):
                owner[n] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(pods)))


def could_be_placed(view: View, unit: Unit, members: Sequence[Pod]) -> bool:
    """SPEC 6a: whether the unit could be placed if every feasible node now held by pods of its
    priority or lower were free."""
    priority, mine = view.unit_priority(members[0]), {m.key for m in members}
    nodes = [
        n
        for n in view.eligible
        if all(view.unit_priority(p) <= priority for p in view.on_node.get(n, []) if p.key not in mine)
    ]
    return max_matching(members, nodes, view.feasible) >= need(view, unit, members)


def partially_placed(view: View, result: Plan) -> list[tuple[str, str]]:
    """Gangs with members placed by this plan, yet fewer than their min-available with those that stay."""
    placed, evicted = placements(result), {e.pod for e in result.evictions}
    out = []
    for gang, members in sorted(view.gangs.items()):
        got = sum(1 for m in members if m.key in view.pending and m.key in placed)
        staying = sum(1 for m in members if m.key in view.occupying and m.key not in evicted)
        if got and staying + got < view.min_available(gang):
            out.append(gang)
    return out


def reserving_unit(view: View, result: Plan, reserve_after: float) -> tuple[Unit | None, set[str]]:
    """SPEC 6a: the unit that reserves in this pass (None: none), and the nodes the pass gave to the
    units ahead of it.

    It is the first unit in pass order that the pass did not place (bind or nominate to its whole
    need), that has waited at least `reserve_after`, and that could be placed if every feasible node
    held by pods of its priority or lower were free.
    """
    units, placed, ahead = pending_units(view), placements(result), set[str]()
    for unit in pass_order(view, units):
        members = units[unit]
        got = [placed[m.key] for m in members if m.key in placed]
        if len(got) >= need(view, unit, members):
            ahead.update(got)  # placed (or a gang with its quorum running: not waiting)
            continue
        if waiting_since(view, unit, members) + reserve_after > view.snapshot.now:
            continue
        if could_be_placed(view, unit, members):
            return unit, ahead
    return None, ahead


# --- the checkers -----------------------------------------------------------------------------------


def check_run_pass(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """Every single-pass invariant (`check_pass`), read with SPEC 6a.

    SPEC 6a nominates the reserving unit to the free nodes it can get, fewer than its need: a gang
    placed partially, which SPEC 9.2 alone would forbid. So one gang per pass may be partially
    placed, if reserving is on, the gang has waited at least `--reserve-after`, it is the reserving
    unit (`reserving_unit`), and its placements are nominations to free nodes with no eviction for
    it; every other partial placement still breaks 9.2.
    """
    problems = check_pass(snapshot, result, scope)
    view = View(snapshot, scope)
    partial = partially_placed(view, result)
    if not partial:
        return problems
    if scope.reserve_after is None:
        return problems
    if len(partial) > 1:
        return [*problems, f"{RESERVE}: gangs {partial} are all placed partially in one pass"]
    ns, name = partial[0]
    unit: Unit = ("gang", ns, name)
    members = [m for m in view.gangs[(ns, name)] if m.key in view.pending]
    placed = placements(result)
    mine = {m.key for m in members}
    why = []
    if waiting_since(view, unit, members) + scope.reserve_after > snapshot.now:
        why.append(f"it has waited less than --reserve-after ({scope.reserve_after:g}s)")
    elif (first := reserving_unit(view, result, scope.reserve_after)[0]) != unit:
        why.append(f"the reserving unit is {first}")
    if any(b.pod in mine for b in result.binds):
        why.append("some of its members are bound")
    if any(e.preemptor in mine for e in result.evictions):
        why.append("it evicts pods")
    taken = [placed[k] for k in sorted(mine) if k in placed and view.on_node.get(placed[k])]
    if taken:
        why.append(f"it is nominated to nodes {taken} that are not free")
    if why:
        return [*problems, f"{RESERVE}: gang {ns}/{name} is placed partially, but {'; '.join(why)}"]
    return [p for p in problems if not (p.startswith(INV2) and f"gang {ns}/{name} has" in p)]


@dataclass
class _Freed:
    """A node freed by an eviction, waiting to go to its preemptor's unit."""

    victim: str
    preemptor: str
    unit: Unit
    priority: int
    at: float


def check_no_wasted_eviction(history: Sequence[Step], scope: Settings) -> list[str]:
    """SPEC 9.8 over a run in which nothing changes but victims leaving.

    An eviction whose node gets a nominee of the preemptor's unit in the same pass opens that node:
    until a pod of that unit is bound there, it may be placed (bound or nominated) only to that unit
    or to a unit of strictly higher priority (which then takes it over, and the node is served);
    SPEC 6: 'never handed to a unit of equal or lower priority while it waits'. At the end of the run
    every opened node is bound to its unit, or still held by it or a strictly higher unit.

    Exempt (SPEC 9.3): evictions of a running gang evicted whole whose node gets no nominee of the
    preemptor's unit: their node 'is free for anyone'. Also exempt: a unit that lost a node it held
    to a strictly higher unit (SPEC 6 lets it give the rest back when it can no longer be completed),
    for the nodes it never used. The run must have settled: no pod left terminating and no eviction
    in its last pass.
    """
    problems: list[str] = []
    opened: dict[str, _Freed] = {}
    displaced: set[Unit] = set()
    held: dict[Unit, tuple[int, set[str]]] = {}
    for step in history:
        view, result = View(step.snapshot, scope), step.plan
        bound = {b.node for b in result.binds}
        by_node = {n: p for p, n in placements(result).items() if p in view.pending}
        taker_of = {
            n: (view.unit(view.pending[p]), view.unit_priority(view.pending[p])) for n, p in by_node.items()
        }
        for unit, (priority, nodes) in held.items():
            if any(n in taker_of and taker_of[n][0] != unit and taker_of[n][1] > priority for n in nodes):
                displaced.add(unit)
        for n, (unit, priority) in sorted(taker_of.items()):
            freed = opened.get(n)
            if freed is None:
                continue
            if unit == freed.unit:
                if n in bound:
                    del opened[n]
            elif priority > freed.priority or freed.unit in displaced:
                del opened[n]  # taken over by a strictly higher unit, or given back after one did
            else:
                problems.append(
                    f"{INV8}: node {n}, freed at t={freed.at:g} by evicting {freed.victim} for "
                    f"{freed.preemptor} (priority {freed.priority}), is given at t={step.now:g} to "
                    f"{by_node[n]} (priority {priority})"
                )
                del opened[n]
        targets = {
            n.node: view.unit(view.pending[n.pod]) for n in result.nominations if n.pod in view.pending
        }
        for e in result.evictions:
            preemptor = view.pending.get(e.preemptor)
            if preemptor is None or targets.get(e.node) != view.unit(preemptor):
                continue  # gang integrity, or not a valid eviction at all: check_pass says which
            opened[e.node] = _Freed(
                e.pod, e.preemptor, view.unit(preemptor), view.unit_priority(preemptor), step.now
            )
        held = {}
        for nomination in result.nominations:
            if (nominee := view.pending.get(nomination.pod)) is not None:
                entry = held.setdefault(view.unit(nominee), (view.unit_priority(nominee), set()))
                entry[1].add(nomination.node)
    if not history:
        return problems
    last = history[-1]
    if last.plan.evictions or any(p.deleting for p in last.snapshot.pods):
        return [*problems, f"{SETTLES}: the last pass (t={last.now:g}) still evicts or waits for victims"]
    view = View(last.snapshot, scope)
    holders = {n.node: view.pending[n.pod] for n in last.plan.nominations if n.pod in view.pending}
    for n, freed in sorted(opened.items()):
        holder = holders.get(n)
        if holder is not None and (
            view.unit(holder) == freed.unit or view.unit_priority(holder) > freed.priority
        ):
            continue
        if freed.unit in displaced:
            continue
        problems.append(
            f"{INV8}: node {n}, freed at t={freed.at:g} by evicting {freed.victim} for {freed.preemptor},"
            f" never went to its unit (at the end it holds {[p.key for p in view.on_node.get(n, [])]}, "
            f"nominee {holder.key if holder else None})"
        )
    return problems


@dataclass
class _Reserving:
    """A unit seen reserving: since which pass, the feasible nodes freed for it since, and by which
    pass it must be bound."""

    since: int
    counted: set[str] = field(default_factory=set)
    deadline: int | None = None


def check_no_starvation(history: Sequence[Step], scope: Settings, *, slack: int = 1) -> list[str]:
    """SPEC 9.9, judged by outcomes.

    In each pass the reserving unit is the one `reserving_unit` names. From the pass it first is,
    count the nodes feasible for it that a pass sees free (no occupying pod) and does not give to a
    unit ahead of it: those it may gather. Once its members can be
    matched to its need among them, it must be bound within `slack` passes. Meant for runs in which
    no preemption can happen (units of one priority), so that nodes free up only by finishing work.
    """
    if scope.reserve_after is None:
        return []
    problems: list[str] = []
    watched: dict[Unit, _Reserving] = {}
    for i, step in enumerate(history):
        view, result = View(step.snapshot, scope), step.plan
        units = pending_units(view)
        bound = {b.pod for b in result.binds}
        for unit, w in list(watched.items()):
            members = units.get(unit, [])
            if not members or any(m.key in bound for m in members):
                del watched[unit]
                if w.deadline is not None and i > w.deadline:
                    problems.append(
                        f"{INV9}: {unit[1]}/{unit[2]} reserves from t={history[w.since].now:g}; enough of "
                        f"its nodes {sorted(w.counted)} were free by t={history[w.deadline - slack].now:g}, "
                        f"yet it is bound only at t={step.now:g}"
                    )
        reserving, ahead = reserving_unit(view, result, scope.reserve_after)
        if reserving is None:
            continue
        members = units[reserving]
        w = watched.setdefault(reserving, _Reserving(i))
        w.counted |= {
            n
            for n in view.eligible
            if not view.on_node.get(n) and n not in ahead and any(view.feasible(m, n) for m in members)
        }
        if w.deadline is None and max_matching(members, w.counted, view.feasible) >= need(
            view, reserving, members
        ):
            w.deadline = i + slack
    for unit, w in watched.items():
        if w.deadline is not None and w.deadline < len(history) - 1:
            problems.append(
                f"{INV9}: {unit[1]}/{unit[2]} reserves from t={history[w.since].now:g}; enough of its "
                f"nodes {sorted(w.counted)} were free by t={history[w.deadline - slack].now:g}, yet it "
                f"is not bound by t={history[-1].now:g}"
            )
    return problems


def check_fewest_victims(snapshot: Snapshot, result: Plan, scope: Settings) -> list[str]:
    """SPEC 9.10 and the rest of SPEC 6's choice, by brute force, for a cluster with one pending unit.

    A valid choice is a set of candidates (occupying pods on eligible nodes, not terminating, of
    protected priority strictly below the unit's), closed under gang integrity (a running gang left
    below its min-available goes whole), after which the unit fits whole on the free nodes and the
    nodes the choice frees (a matching of its members to feasible nodes). The plan's victims for the
    unit must touch no higher priority than some valid choice must (lowest first) and, at that
    priority, no valid choice may evict fewer pods (a running gang counts all its members). A unit
    that does not fit on free nodes but has a valid choice, and may preempt, must preempt; one that
    fits on free nodes evicts nobody.
    """
    view = View(snapshot, scope)
    units = pending_units(view)
    assert len(units) <= 1, "check_fewest_victims judges clusters with one pending unit"
    problems: list[str] = []
    for unit, members in units.items():
        priority, k = view.unit_priority(members[0]), need(view, unit, members)
        taken = {p.nominated_node for p in view.pending.values()}
        free = [n for n in view.eligible if not view.on_node.get(n) and n not in taken]
        mine = {m.key for m in members}
        victims = [e.pod for e in result.evictions if e.preemptor in mine]
        if max_matching(members, free, view.feasible) >= k:
            if victims:
                problems.append(f"SPEC 6: {unit[2]} fits on free nodes {free} yet evicts {victims}")
            continue
        choices = valid_choices(view, members, k, free, priority)
        level = {key: view.unit_priority(view.occupying[key]) for c in choices for key in c}
        if not victims:
            placed = any(m.key in placements(result) for m in members)
            if choices and view.may_preempt(members[0]) and not placed:
                problems.append(
                    f"SPEC 6: {unit[2]} stays pending though evicting {sorted(choices[0])} would place it"
                )
            continue
        levels = [view.unit_priority(view.occupying[v]) for v in victims if v in view.occupying]
        if not levels:
            continue  # no occupying pod among them: check_pass says so
        top = max(levels)
        count = levels.count(top)
        for choice in choices:
            its_top = max(level[v] for v in choice)
            its_count = sum(1 for v in choice if level[v] == its_top)
            if its_top < top:
                problems.append(
                    f"{LOWEST}: {unit[2]} evicts {victims} (up to priority {top}); {sorted(choice)} "
                    f"touch priority {its_top} at most"
                )
                break
            if its_top == top and its_count < count:
                problems.append(
                    f"{INV10}: {unit[2]} evicts {count} pod(s) of priority {top} ({victims}); "
                    f"{sorted(choice)} would evict {its_count}"
                )
                break
    return problems


def valid_choices(
    view: View, members: Sequence[Pod], k: int, free: Sequence[str], priority: int
) -> list[frozenset[str]]:
    """Every valid set of victims (SPEC 6) for a unit of `priority` that needs `k` of `members` placed."""
    candidates = sorted(
        p.key
        for p in view.occupying.values()
        if not p.deleting and p.node_name in view.eligible and view.unit_priority(p) < priority
    )
    out = []
    for size in range(1, len(candidates) + 1):
        for combo in combinations(candidates, size):
            choice = frozenset(combo)
            if not _whole(view, choice):
                continue
            gone = {view.occupying[v].node_name for v in choice}
            freed = [n for n in gone if all(p.key in choice for p in view.on_node[n])]
            if max_matching(members, [*free, *freed], view.feasible) >= k:
                out.append(choice)
    return out


def _whole(view: View, choice: frozenset[str]) -> bool:
    """SPEC 6 gang integrity: a running gang that loses members keeps its min-available or goes whole."""
    for gang, members in view.gangs.items():
        occupying = [m for m in members if m.key in view.occupying]
        gone = [m for m in occupying if m.key in choice]
        broken = gone and len(occupying) - len(gone) < view.min_available(gang, of_all=True)
        if broken and any(not m.deleting and m.key not in choice for m in occupying):
            return False
    return True


# --- generated clusters ------------------------------------------------------------------------------

# Where pending pods may run: anywhere untainted, a pool, a tainted pool, gpus, cpu (SPEC 2).
WHERE = ("", "pool-a", "ml", "not-pool-a", "4-gpus", "cpu", "anywhere")


@st.composite
def _nodes(draw: st.DrawFn, lo: int, hi: int, *, all_eligible: bool = False) -> list[Node]:
    """`lo` to `hi` nodes in pools a and b; some tainted for ml, some with gpus, a few not eligible."""
    out = []
    for i in range(draw(st.integers(lo, hi))):
        tainted = draw(st.integers(0, 4)) == 4
        gpus = draw(st.sampled_from((0, 0, 4, 8)))
        out.append(
            node(
                f"n{i:02d}",
                labels={"pool": draw(st.sampled_from(("a", "b")))} | ({"gpu": "yes"} if gpus else {}),
                taints=(TAINTS["dedicated"],) if tainted else (),
                allocatable={"cpu": 8000, "pods": 6} | ({GPU: gpus} if gpus else {}),
                ready=all_eligible or draw(st.integers(0, 9)) != 9,
            )
        )
    return out


def _foreign(draw: st.DrawFn, nodes: Sequence[Node]) -> list[Pod]:
    """Pods of another scheduler that use most of a node's cpu (so `cpu` pods do not fit there)."""
    return [
        pod(
            f"ds-{n.name}",
            on=n.name,
            scheduler="default-scheduler",
            where=Constraints(requests=(("cpu", 6000),)),
        )
        for n in nodes
        if draw(st.integers(0, 5)) == 5
    ]


@st.composite
def _running(draw: st.DrawFn, nodes: Sequence[Node], priorities: Sequence[int]) -> list[Pod]:
    """Our running pods on most nodes: singles, and gangs on runs of consecutive nodes (min-available
    1 to their size), of the given priorities; a few of them terminating already."""
    pods: list[Pod] = []
    i, gangs = 0, 0
    while i < len(nodes):
        kind = draw(st.sampled_from(("single", "single", "gang", "free")))
        prio = draw(st.sampled_from(priorities))
        if kind == "gang" and i + 1 < len(nodes):
            size = draw(st.integers(2, min(3, len(nodes) - i)))
            gang, gangs = f"r{gangs}", gangs + 1
            least = draw(st.integers(1, size))
            for j in range(size):
                pods.append(
                    pod(f"{gang}-{j}", on=nodes[i + j].name, priority=prio, gang=gang, min_available=least)
                )
            i += size
            continue
        if kind != "free":
            leaving = draw(st.integers(0, 7)) == 7
            pods.append(pod(f"s{i}", on=nodes[i].name, priority=prio, deleted_at=12.0 if leaving else 0.0))
        i += 1
    return pods


@st.composite
def _pending_unit(draw: st.DrawFn, index: int, priorities: Sequence[int], *, now: float) -> list[Pod]:
    """A pending single or gang (1 to 3 members, min-available all of them), of one priority, created
    before `now`; its members run where one placement says, or the first member somewhere else."""
    prio = draw(st.sampled_from(priorities))
    created = float(draw(st.integers(0, int(now))))
    policy = PREEMPT_NEVER if draw(st.integers(0, 7)) == 7 else None
    where = PLACEMENT[draw(st.sampled_from(WHERE))]
    size = draw(st.integers(1, 3))
    if draw(st.booleans()):
        return [pod(f"p{index}", priority=prio, t=created, policy=policy, where=where)]
    first = PLACEMENT[draw(st.sampled_from(WHERE))] if draw(st.integers(0, 3)) == 3 else where
    gang = f"g{index}"
    return [
        pod(
            f"{gang}-{j}",
            priority=prio,
            t=created,
            policy=policy,
            gang=gang,
            min_available=size,
            where=first if j == 0 else where,
        )
        for j in range(size)
    ]


@st.composite
def busy_clusters(draw: st.DrawFn) -> Snapshot:
    """A busy cluster for SPEC 9.8: up to 8 nodes, most running our pods of low priorities (0, 10,
    100), one to four pending units of priorities 10, 100 and 1000: preemption, gang integrity,
    takeovers (a policy-Never unit above a preemptor) and constraints all in play. Its clock reads
    10 s, every pending pod created before."""
    now = 10.0
    nodes = draw(_nodes(2, 8))
    running = draw(_running(nodes, (0, 10, 100)))
    pending = [
        p for i in range(draw(st.integers(1, 4))) for p in draw(_pending_unit(i, (10, 100, 1000), now=now))
    ]
    return Snapshot(tuple(nodes), (*running, *_foreign(draw, nodes), *pending), now=now)


@st.composite
def preemption_clusters(draw: st.DrawFn) -> Snapshot:
    """A small cluster for SPEC 9.10: two to six eligible nodes, most running singles and gangs of
    priorities 0, 10 and 50, and one pending unit of priority 100 (brute force stays cheap)."""
    nodes = draw(_nodes(2, 6, all_eligible=True))
    running = [p for p in draw(_running(nodes, (0, 10, 50))) if not p.deleting]
    unit = draw(_pending_unit(0, (100,), now=0.0))
    return Snapshot(tuple(nodes), (*running, *_foreign(draw, nodes), *unit))


@dataclass(frozen=True)
class Stream:
    """A cluster kept busy for SPEC 9.9: its start, what arrives, how long work runs."""

    snapshot: Snapshot
    arrivals: tuple[Arrival, ...]
    lifetimes: dict[str, float]


STREAM_PRIORITY = 100


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Four to ten nodes busy with singles of one priority, one or two gangs waiting at the start
    (sometimes one that could never be placed), and singles (sometimes a gang) of the same priority
    arriving tick after tick, every piece of work running one to six ticks."""
    nodes = draw(_nodes(4, 10, all_eligible=True))
    prio = STREAM_PRIORITY
    pods, lifetimes = [], {}
    for n in nodes:
        if draw(st.integers(0, 5)) != 5:
            name = f"s-{n.name}"
            pods.append(pod(name, on=n.name, priority=prio, t=-1.0))
            lifetimes[f"default/{name}"] = TICK * draw(st.integers(1, 6))
    for g in range(draw(st.integers(1, 2))):
        size = draw(st.integers(2, len(nodes) + (1 if g else 0)))
        where = PLACEMENT[draw(st.sampled_from(("", "", "ml", "pool-a")))]
        life = TICK * draw(st.integers(1, 6))
        for j in range(size):
            pods.append(pod(f"big{g}-{j}", priority=prio, gang=f"big{g}", min_available=size, where=where))
            lifetimes[f"default/big{g}-{j}"] = life
    arrivals = []
    for tick, count in enumerate(draw(st.lists(st.integers(0, 2), min_size=25, max_size=25)), start=1):
        for j in range(count):
            where = PLACEMENT[draw(st.sampled_from(("", "", "", "pool-a", "anywhere")))]
            p = pod(f"a{tick}-{j}", priority=prio, where=where)
            arrivals.append(Arrival(tick * TICK, p, TICK * draw(st.integers(1, 6))))
        if draw(st.integers(0, 11)) == 11:
            size = draw(st.integers(2, 4))
            for j in range(size):
                p = pod(f"late{tick}-{j}", priority=prio, gang=f"late{tick}", min_available=size)
                arrivals.append(Arrival(tick * TICK, p, TICK * 2))
    return Stream(Snapshot(tuple(nodes), tuple(pods)), tuple(arrivals), lifetimes)


# --- running and reporting ---------------------------------------------------------------------------


def holds_on_every_pass(driver: Driver, scope: Settings) -> None:
    """SPEC 9.1 to 9.7 (with 6a) on every pass the driver made."""
    for step in driver.history:
        found = check_run_pass(step.snapshot, step.plan, scope)
        assert not found, report(found, driver, at=step)


def report(found: Sequence[str], driver: Driver, *, at: Step | None = None) -> str:
    """The violations, the passes that led to them and the cluster they started from."""
    first = driver.history[0].snapshot if driver.history else driver.snapshot()
    where = [f"in the pass at t={at.now:g}, on:", describe(at.snapshot)] if at is not None else []
    return "\n".join(
        [*found[:8], *where, "passes:", driver.transcript(), "the run started from:", describe(first)]
    )


def settled(step: Step) -> bool:
    """Nothing left to happen in a static cluster: no victim leaving, nothing evicted or bound."""
    return not (step.plan.evictions or step.plan.binds or any(p.deleting for p in step.snapshot.pods))


RESERVE_AFTER = (None, 0.0, 10.0, 30.0)

# A gang of two held back while one of its nodes' victims leaves, and a higher unit with policy
# Never that takes a freed node over (the gang must preempt again, not waste the first eviction).
TAKEOVER = Snapshot(
    (node("n00"), node("n01"), node("n02")),
    (
        pod("v0", on="n00", priority=0),
        pod("v1", on="n01", priority=0),
        pod("v2", on="n02", priority=0),
        pod("g0-0", priority=100, gang="g0", min_available=2, t=1.0),
        pod("g0-1", priority=100, gang="g0", min_available=2, t=1.0),
        pod("p1", priority=1000, policy=PREEMPT_NEVER, t=2.0),
    ),
    now=10.0,
)


@pytest.mark.parametrize("reserve_after", RESERVE_AFTER)
@RUNS
@given(busy_clusters())
@example(TAKEOVER)
def test_no_eviction_is_wasted(reserve_after: float | None, snapshot: Snapshot) -> None:
    """SPEC 9.8 (v2), with every single-pass invariant on every pass: a busy cluster in which nothing
    changes but victims leaving (graces of 1 to 14 s, a pass every 5 s) runs until it settles; every
    node freed by an eviction goes to its preemptor's unit or to a strictly higher unit."""
    scope = Settings(reserve_after=reserve_after)
    grace = {p.key: float(1 + 13 * (i % 3) // 2) for i, p in enumerate(snapshot.pods)}
    driver = Driver.of(snapshot, settings=scope, tick=TICK, grace=grace)
    horizon = snapshot.now + (reserve_after or 0.0) + 2 * TICK
    driver.run_until(lambda step: settled(step) and step.now > horizon, limit=40)
    holds_on_every_pass(driver, scope)
    found = check_no_wasted_eviction(driver.history, scope)
    assert not found, report(found, driver)


@pytest.mark.parametrize("seed", range(6))
def test_no_eviction_is_wasted_on_large_clusters(seed: int) -> None:
    """SPEC 9.8 and every single-pass invariant, pass after pass, on large generated clusters of every
    kind of node and pod (50 to 200 nodes, up to 600 pods; seeded, as `make_cluster` is), scoped as
    the property tests of single passes are, until they settle (their terminating pods leave at
    t=100)."""
    rng = random.Random(seed)
    snapshot = make_cluster(rng, rng.randint(50, 200), rng.randint(100, 600))
    reserve_after = RESERVE_AFTER[seed % len(RESERVE_AFTER)]
    scope = replace(SCOPES[seed % len(SCOPES)], reserve_after=reserve_after)
    driver = Driver.of(snapshot, settings=scope, tick=TICK)
    horizon = 100.0 + (reserve_after or 0.0) + 2 * TICK
    driver.run_until(lambda step: settled(step) and step.now > horizon, limit=40)
    holds_on_every_pass(driver, scope)
    found = check_no_wasted_eviction(driver.history, scope)
    assert not found, report(found, driver)


def starving_gang_stream() -> Stream:
    """The named case of `test_passes_examples`, smaller: 6 nodes, a gang of 3, a single each tick."""
    nodes = tuple(node(f"n{i:02d}") for i in range(6))
    pods = [pod(f"s{i}", on=f"n{i:02d}", priority=STREAM_PRIORITY, t=-1.0) for i in range(6)]
    lifetimes = {f"default/s{i}": TICK * (i + 1) for i in range(6)}
    for j in range(3):
        pods.append(pod(f"big0-{j}", priority=STREAM_PRIORITY, gang="big0", min_available=3))
    arrivals = [Arrival(t * TICK, pod(f"a{t}-0", priority=STREAM_PRIORITY), 6 * TICK) for t in range(1, 26)]
    return Stream(Snapshot(nodes, tuple(pods)), tuple(arrivals), lifetimes)


@pytest.mark.parametrize("reserve_after", [0.0, 10.0, 30.0])
@RUNS
@given(streams())
@example(starving_gang_stream())
def test_no_unit_starves(reserve_after: float, stream: Stream) -> None:
    """SPEC 9.9 (v2), with every single-pass invariant on every pass: units of one priority keep
    arriving and work keeps finishing for 25 ticks; a unit that became the reserving unit is bound
    (within a pass) once enough of its feasible nodes have been freed, whatever arrives behind it."""
    scope = Settings(reserve_after=reserve_after)
    driver = Driver.of(
        stream.snapshot, settings=scope, tick=TICK, lifetimes=stream.lifetimes, arrivals=stream.arrivals
    )
    driver.run(40)
    found = check_no_starvation(driver.history, scope)
    assert not found, report(found, driver)
    holds_on_every_pass(driver, scope)


# Two running gangs of one priority; a single preemptor needs one node: the smaller gang goes.
TWO_GANGS = Snapshot(
    (node("n00"), node("n01"), node("n02"), node("n03"), node("n04")),
    (
        pod("a-0", on="n02", priority=10, gang="a", min_available=2),
        pod("a-1", on="n03", priority=10, gang="a", min_available=2),
        pod("b-0", on="n00", priority=10, gang="b", min_available=3, t=5.0),
        pod("b-1", on="n01", priority=10, gang="b", min_available=3, t=5.0),
        pod("b-2", on="n04", priority=10, gang="b", min_available=3, t=5.0),
        pod("p", priority=100, t=6.0),
    ),
)


@ONE_PASS
@given(preemption_clusters())
@example(TWO_GANGS)
def test_fewest_victims(snapshot: Snapshot) -> None:
    """SPEC 9.10 (v2) and the rest of SPEC 6's choice, against every valid choice (brute force): the
    lowest protected priority first, then, at the highest level touched, the fewest pods evicted (a
    running gang counts all its members); a unit that can preempt does, one that fits does not."""
    scope = Settings()
    result = plan(snapshot, settings=scope)
    found = check_fewest_victims(snapshot, result, scope) + check_pass(snapshot, result, scope)
    assert not found, "\n".join([*found, "cluster:", describe(snapshot)])
