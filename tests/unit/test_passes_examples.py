"""Named cases for SPEC 6, 6a and 9.8 to 9.10 (v2), and the checkers of `test_passes` checked.

The first part drives the planner through the stories the rules were written for: a gang starving
behind a stream of single pods, and reserving its way out; a gang held back while its victims
leave; the fewest victims between a single and a gang, and between two gangs. Cases the planner
did not pass when they were written were marked `xfail(strict=True)`; the planner passes them now.

The second part checks the checkers: each must flag a run or a plan that breaks its rule, and pass
one that keeps it, or a green property test would prove nothing. For SPEC 9.9 a small model of
SPEC 5 and 6a (one priority, no preemption) plays the planner: the checker must find no fault in
its runs, and must find the starvation when the model's reserving is off.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_scheduler.model import PREEMPT_NEVER, Bind, Nominate, Plan, Snapshot, Unschedulable
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings
from tests.unit.builders import bind, evict, node, nominate, pod
from tests.unit.driver import Arrival, Driver, Planner, Step
from tests.unit.driver import planner as the_planner
from tests.unit.test_invariants import INV2, View
from tests.unit.test_passes import (
    INV8,
    INV9,
    INV10,
    LOWEST,
    RESERVE,
    RUNS,
    SETTLES,
    TAKEOVER,
    TICK,
    TWO_GANGS,
    Stream,
    check_fewest_victims,
    check_no_starvation,
    check_no_wasted_eviction,
    check_run_pass,
    could_be_placed,
    holds_on_every_pass,
    need,
    pass_order,
    pending_units,
    report,
    starving_gang_stream,
    streams,
    waiting_since,
)

SCOPE = Settings()
PRIORITY = 100


def pairs(result: Plan) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[tuple[str, str]]]:
    """A plan's binds, nominations and evictions as (pod name, node) pairs, namespace left out."""

    def short(key: str) -> str:
        return key.split("/", 1)[1]

    return (
        {(short(b.pod), b.node) for b in result.binds},
        {(short(n.pod), n.node) for n in result.nominations},
        {(short(e.pod), e.node) for e in result.evictions},
    )


# --- the starving gang (SPEC 6a, 9.9) ------------------------------------------------------------


def starving_gang(reserve_after: float | None, *, ticks: int = 40, planner: Planner = the_planner) -> Driver:
    """A 12-node cluster kept busy by single pods of priority 100: one finishes every tick (5 s) and
    one arrives every tick, each running 60 s; a gang `big` of 6 at the same priority waits from t=0."""
    nodes = tuple(node(f"n{i:02d}") for i in range(12))
    running = [pod(f"s{i:02d}", on=f"n{i:02d}", priority=PRIORITY, t=-1.0) for i in range(12)]
    gang = [pod(f"big-{j}", priority=PRIORITY, gang="big", min_available=6) for j in range(6)]
    arrivals = [Arrival(t * TICK, pod(f"a{t:02d}", priority=PRIORITY), 60.0) for t in range(1, ticks + 1)]
    return Driver.of(
        Snapshot(nodes, (*running, *gang)),
        settings=Settings(reserve_after=reserve_after),
        tick=TICK,
        lifetimes={f"default/s{i:02d}": TICK * (i + 1) for i in range(12)},
        arrivals=arrivals,
        planner=planner,
    )


def gang_bound_at(driver: Driver, gang: str = "big") -> float | None:
    """When the gang's members were bound (all in one pass), or None."""
    for step in driver.history:
        members = {b.pod for b in step.plan.binds if b.pod.startswith(f"default/{gang}-")}
        if members:
            assert len(members) == 6, f"the gang is bound in parts: {sorted(members)}"
            return step.now
    return None


@pytest.mark.parametrize(("reserve_after", "first_held"), [(0.0, 5.0), (20.0, 20.0), (30.0, 30.0)])
def test_a_starving_gang_reserves_nodes_as_they_free_and_runs(
    reserve_after: float, first_held: float
) -> None:
    """SPEC 6a and 9.9: the gang is the first unit in pass order, yet alone (backfill) it never sees 6
    free nodes. Once it has waited `reserve_after` it is nominated to each node as it frees (the
    first at `first_held`, one more every tick), keeps them, and is bound with the sixth, five ticks
    later: with 30 s, at t=55 (11 ticks), not never. Until it reserves, singles backfill; its
    members' reason says what it holds, e.g. `gang default/big reserves 3 of the 6 nodes it needs
    (for 10s)`; every single-pass invariant holds on every pass."""
    runs_the_starving_gang(starving_gang(reserve_after), reserve_after, first_held)


def runs_the_starving_gang(driver: Driver, reserve_after: float, first_held: float) -> None:
    """What `test_a_starving_gang_reserves_nodes_as_they_free_and_runs` pins, for a planner."""
    driver.run(16)
    assert gang_bound_at(driver) == first_held + 25, report(["the gang is not bound when expected"], driver)
    held: dict[str, str] = {}
    for step in driver.history:
        binds, nominations, evictions = pairs(step.plan)
        assert not evictions, "nothing is evicted: all pods have one priority"
        mine = {p: n for p, n in nominations if p.startswith("big-")}
        if step.now < first_held:
            assert not mine, f"t={step.now:g}: the gang reserves before it has waited {reserve_after:g}s"
            assert len(binds) == (1 if step.now > 0 else 0), f"t={step.now:g}: backfill binds a single"
        elif step.now < first_held + 25:
            assert held.items() <= mine.items(), f"t={step.now:g}: the gang gave back nodes it held"
            assert len(mine) == (step.now - first_held) // TICK + 1, f"t={step.now:g}: holds {mine}"
            assert not binds, f"t={step.now:g}: a node that frees goes to the reserving gang, not {binds}"
            held = mine
        if step.now == first_held + 10:  # it reserves since t=reserve_after, and holds 3 nodes
            reason = (
                f"gang default/big reserves 3 of the 6 nodes it needs (for {step.now - reserve_after:g}s)"
            )
            waiting = {u.pod: u.reason for u in step.plan.unschedulable if u.pod.startswith("default/big-")}
            assert waiting == dict.fromkeys(("default/big-3", "default/big-4", "default/big-5"), reason)
    holds_on_every_pass(driver, driver.settings)


def test_one_unit_reserves_at_a_time_and_none_waits_for_the_impossible() -> None:
    """SPEC 6a: 8 busy nodes (one frees every tick, a single arrives every tick, 40 s of work each);
    gangs of one priority: `huge` (9 members, first in pass order) can never be placed, so it never
    reserves; `big` (4) reserves from t=15, once it has waited 10 s, and is bound at t=30; only then
    does `next` (3) reserve, holding nothing until t=35, and it is bound at t=45."""
    reserves_one_at_a_time(the_planner)


def reserves_one_at_a_time(planner: Planner) -> None:
    """What `test_one_unit_reserves_at_a_time_and_none_waits_for_the_impossible` pins, for a planner."""
    nodes = tuple(node(f"n{i:02d}") for i in range(8))
    running = [pod(f"s{i}", on=f"n{i:02d}", priority=PRIORITY, t=-1.0) for i in range(8)]
    gangs = [
        *(pod(f"huge-{j}", priority=PRIORITY, gang="huge", min_available=9) for j in range(9)),
        *(pod(f"big-{j}", priority=PRIORITY, gang="big", min_available=4, t=1.0) for j in range(4)),
        *(pod(f"next-{j}", priority=PRIORITY, gang="next", min_available=3, t=2.0) for j in range(3)),
    ]
    arrivals = [Arrival(t * TICK, pod(f"a{t:02d}", priority=PRIORITY), 40.0) for t in range(1, 30)]
    driver = Driver.of(
        Snapshot(nodes, (*running, *gangs)),
        settings=Settings(reserve_after=10.0),
        tick=TICK,
        lifetimes={f"default/s{i}": TICK * (i + 1) for i in range(8)},
        arrivals=arrivals,
        planner=planner,
    )
    driver.run(12)
    placed_by = {
        gang: sorted({s.now for s in driver.history for p, _ in pairs(s.plan)[0] if p.startswith(gang)})
        for gang in ("huge-", "big-", "next-")
    }
    assert placed_by == {"huge-": [], "big-": [30.0], "next-": [45.0]}, driver.transcript()
    for step in driver.history:
        nominated = {p.split("-")[0] for p, _ in pairs(step.plan)[1]}
        assert nominated <= ({"big"} if step.now < 30 else {"next"}), (
            f"t={step.now:g}: {nominated} hold nodes"
        )
        assert step.now >= 15 or not nominated, f"t={step.now:g}: a gang reserves before it has waited"
    holds_on_every_pass(driver, driver.settings)


def test_with_reserve_after_off_backfill_wins_and_the_gang_starves() -> None:
    """SPEC 6a `--reserve-after off` keeps SPEC 5.3 alone: every node that frees is bound at once to
    the single waiting behind the gang; the gang is never nominated nor bound (it starves)."""
    driver = starving_gang(None)
    driver.run(40)
    for step in driver.history:
        binds, nominations, evictions = pairs(step.plan)
        assert not nominations and not evictions
        assert len(binds) == (1 if step.now > 0 else 0), f"t={step.now:g}: {binds}"
        assert all(p.startswith("a") for p, _ in binds)
    assert gang_bound_at(driver) is None
    holds_on_every_pass(driver, driver.settings)


# --- a gang held back while its victims leave (SPEC 6, 9.8) ----------------------------------------


def test_a_gang_held_back_while_its_victims_leave_keeps_its_nominations() -> None:
    """SPEC 6 (v2) 'a waiting unit keeps what it holds' and 9.8: gang `g` (100) evicts three pods of
    priority 0 that leave after 2, 12 and 22 s. While they leave, a single of its priority and one
    below arrive: neither gets the freed n0 (reserved for the gang), nothing is evicted twice, and
    the gang keeps its three nominations until it is bound, together, once the last victim is gone."""
    snapshot = Snapshot(
        (node("n0"), node("n1"), node("n2"), node("n3")),
        (
            pod("v0", on="n0", priority=0),
            pod("v1", on="n1", priority=0),
            pod("v2", on="n2", priority=0),
            pod("keep", on="n3", priority=500),
            *(pod(f"g-{j}", priority=PRIORITY, gang="g", min_available=3) for j in range(3)),
        ),
    )
    arrivals = [Arrival(5.0, pod("eq", priority=PRIORITY)), Arrival(5.0, pod("lo", priority=0))]
    grace = {"default/v0": 2.0, "default/v1": 12.0, "default/v2": 22.0}
    driver = Driver.of(snapshot, tick=TICK, grace=grace, arrivals=arrivals)
    driver.run(7)
    waiting = {("g-0", "n0"), ("g-1", "n1"), ("g-2", "n2")}
    expected = [
        (set(), waiting, {("v0", "n0"), ("v1", "n1"), ("v2", "n2")}),  # t=0
        *[(set(), waiting, set())] * 4,  # t=5..20: v0 gone at 2, v1 at 12, v2 still there
        (waiting, set(), set()),  # t=25: all gone, bound together
        (set(), set(), set()),  # t=30
    ]
    assert [pairs(s.plan) for s in driver.history] == expected, driver.transcript()
    for step in driver.history[1:]:
        assert {u.pod for u in step.plan.unschedulable} == {"default/eq", "default/lo"}
    holds_on_every_pass(driver, SCOPE)
    assert check_no_wasted_eviction(driver.history, SCOPE) == []


def test_a_strictly_higher_unit_takes_over_a_freed_node_and_the_gang_preempts_for_the_rest() -> None:
    """SPEC 6 (v2) and 9.8: gang `g0` (100, 2 members) evicts v0 and v1 (0). `p1` (1000, policy Never,
    so it could not preempt) takes n00 over once v0 is gone; the gang keeps n01, places the rest of
    its need in the same pass by evicting v2, and is bound once v1 and v2 are gone. Every eviction
    served its preemptor's unit or the strictly higher unit that took its node over."""
    grace = {"default/v0": 1.0, "default/v1": 7.0, "default/v2": 14.0}
    driver = Driver.of(TAKEOVER, tick=TICK, grace=grace)
    driver.run(6)
    expected = [
        (set(), {("g0-0", "n00"), ("g0-1", "n01")}, {("v0", "n00"), ("v1", "n01")}),  # t=10
        ({("p1", "n00")}, {("g0-0", "n02"), ("g0-1", "n01")}, {("v2", "n02")}),  # t=15
        (set(), {("g0-0", "n02"), ("g0-1", "n01")}, set()),  # t=20
        (set(), {("g0-0", "n02"), ("g0-1", "n01")}, set()),  # t=25
        ({("g0-0", "n02"), ("g0-1", "n01")}, set(), set()),  # t=30
        (set(), set(), set()),  # t=35
    ]
    assert [pairs(s.plan) for s in driver.history] == expected, driver.transcript()
    holds_on_every_pass(driver, SCOPE)
    assert check_no_wasted_eviction(driver.history, SCOPE) == []


# --- the fewest victims (SPEC 6, 9.10) -------------------------------------------------------------


def test_fewest_victims_a_single_rather_than_a_gang_of_the_same_priority() -> None:
    """SPEC 6 (v2) and 9.10: `p` (100) needs one node; the gang `g` (10, min-available 2) is newer and
    on the first nodes, but evicting one member takes the whole gang (2 pods); the single `s` (10,
    older) is 1 pod: `s` goes."""
    snapshot = Snapshot(
        (node("n0"), node("n1"), node("n2")),
        (
            pod("g-0", on="n0", priority=10, gang="g", min_available=2, t=5.0),
            pod("g-1", on="n1", priority=10, gang="g", min_available=2, t=5.0),
            pod("s", on="n2", priority=10, t=0.0),
            pod("p", priority=100, t=6.0),
        ),
    )
    assert plan(snapshot, settings=SCOPE) == Plan(
        nominations=(nominate("p", "n2", waiting_for=("s",)),),
        evictions=(evict("s", "n2", by="p"),),
    )


def test_fewest_victims_the_smaller_gang_when_it_is_enough() -> None:
    """SPEC 6 (v2) and 9.10: `p` (100) needs one node; gang `a` (2 members) and the newer gang `b` (3
    members) are both of priority 10 and go whole: `a` goes (2 pods), and `p` takes its first node."""
    assert plan(TWO_GANGS, settings=SCOPE) == Plan(
        nominations=(nominate("p", "n02", waiting_for=("a-0",)),),
        evictions=(evict("a-0", "n02", by="p"), evict("a-1", "n03", by="p")),
    )


def test_fewest_victims_the_larger_gang_alone_when_the_smaller_is_not_enough() -> None:
    """SPEC 6 (v2) and 9.10: gang `q` (100) needs 3 nodes; gang `a` (2 members, newer) frees too few
    alone, gang `b` (3 members) enough: `b` goes alone (3 pods), not `a` and then `b` (5)."""
    snapshot = Snapshot(
        tuple(node(f"n0{i}") for i in range(5)),
        (
            pod("a-0", on="n02", priority=10, gang="a", min_available=2, t=5.0),
            pod("a-1", on="n03", priority=10, gang="a", min_available=2, t=5.0),
            pod("b-0", on="n00", priority=10, gang="b", min_available=3),
            pod("b-1", on="n01", priority=10, gang="b", min_available=3),
            pod("b-2", on="n04", priority=10, gang="b", min_available=3),
            *(pod(f"q-{j}", priority=100, gang="q", min_available=3, t=6.0) for j in range(3)),
        ),
    )
    assert plan(snapshot, settings=SCOPE) == Plan(
        nominations=(
            nominate("q-0", "n00", waiting_for=("b-0",)),
            nominate("q-1", "n01", waiting_for=("b-1",)),
            nominate("q-2", "n04", waiting_for=("b-2",)),
        ),
        evictions=(
            evict("b-0", "n00", by="q-0"),
            evict("b-1", "n01", by="q-1"),
            evict("b-2", "n04", by="q-2"),
        ),
    )


# --- the checkers catch what they should -----------------------------------------------------------


def test_no_wasted_eviction_flags_a_freed_node_handed_to_an_equal_unit_or_left_unused() -> None:
    """`check_no_wasted_eviction`: `hi` (100) evicts `v` from n0; once `v` is gone, n0 must go to `hi`
    (or to a unit above 100), not to `eq` (100), and not stay empty at the end of the run."""
    first = Snapshot(
        (node("n0"),),
        (pod("v", on="n0", priority=0), pod("hi", priority=100), pod("eq", priority=100, t=1.0)),
    )
    evicts = Plan(
        nominations=(nominate("hi", "n0", waiting_for=("v",)),),
        evictions=(evict("v", "n0", by="hi"),),
        unschedulable=(Unschedulable("default/eq", "x"),),
    )
    after = Snapshot(
        (node("n0"),), (pod("hi", priority=100, nominated="n0"), pod("eq", priority=100, t=1.0)), now=5.0
    )
    to_eq = Plan(binds=(bind("eq", "n0"),), unschedulable=(Unschedulable("default/hi", "x"),))
    to_none = Plan(unschedulable=(Unschedulable("default/eq", "x"), Unschedulable("default/hi", "x")))
    to_hi = Plan(binds=(bind("hi", "n0"),), unschedulable=(Unschedulable("default/eq", "x"),))
    assert check_no_wasted_eviction([Step(first, evicts), Step(after, to_hi)], SCOPE) == []
    found = check_no_wasted_eviction([Step(first, evicts), Step(after, to_eq)], SCOPE)
    assert len(found) == 1 and found[0].startswith(INV8) and "given at t=5 to default/eq" in found[0]
    found = check_no_wasted_eviction([Step(first, evicts), Step(after, to_none)], SCOPE)
    assert len(found) == 1 and found[0].startswith(INV8) and "never went to its unit" in found[0]
    assert check_no_wasted_eviction([Step(first, evicts)], SCOPE)[0].startswith(SETTLES)
    # A strictly higher unit may take it over.
    top = Snapshot((node("n0"),), (*after.pods, pod("top", priority=1000, t=2.0)), now=5.0)
    to_top = Plan(
        binds=(bind("top", "n0"),),
        unschedulable=(Unschedulable("default/eq", "x"), Unschedulable("default/hi", "x")),
    )
    assert check_no_wasted_eviction([Step(first, evicts), Step(top, to_top)], SCOPE) == []


def test_no_wasted_eviction_lets_a_gang_evicted_whole_free_nodes_for_anyone() -> None:
    """SPEC 9.3: a member of a running gang evicted whole for integrity may free a node the preemptor
    does not use; that node is free for anyone, even a unit of lower priority."""
    first = Snapshot(
        (node("n0"), node("n1")),
        (
            pod("r-0", on="n0", priority=0, gang="r", min_available=2),
            pod("r-1", on="n1", priority=0, gang="r", min_available=2),
            pod("hi", priority=100),
            pod("lo", priority=5, t=1.0),
        ),
    )
    evicts = Plan(
        nominations=(nominate("hi", "n0", waiting_for=("r-0",)),),
        evictions=(evict("r-0", "n0", by="hi"), evict("r-1", "n1", by="hi")),
        unschedulable=(Unschedulable("default/lo", "x"),),
    )
    after = Snapshot(
        (node("n0"), node("n1")),
        (pod("hi", priority=100, nominated="n0"), pod("lo", priority=5, t=1.0)),
        now=5.0,
    )
    done = Plan(binds=(bind("hi", "n0"), bind("lo", "n1")))
    assert check_no_wasted_eviction([Step(first, evicts), Step(after, done)], SCOPE) == []


def test_no_wasted_eviction_excuses_a_unit_displaced_by_a_strictly_higher_one() -> None:
    """SPEC 6: a unit gives its nominations back when it can no longer be completed. Gang `g` (100)
    evicts v0 and v1; `top` (1000) takes n0 over; `g` cannot be completed and gives n1 back, which
    `lo` (5) gets: not a wasted eviction of `g`'s own doing. Without the takeover it is one."""
    nodes = (node("n0"), node("n1"))
    gang = [pod(f"g-{j}", priority=100, gang="g", min_available=2) for j in range(2)]
    first = Snapshot(
        nodes, (pod("v0", on="n0", priority=0), pod("v1", on="n1", priority=0), *gang, pod("lo", priority=5))
    )
    evicts = Plan(
        nominations=(nominate("g-0", "n0", waiting_for=("v0",)), nominate("g-1", "n1", waiting_for=("v1",))),
        evictions=(evict("v0", "n0", by="g-0"), evict("v1", "n1", by="g-1")),
        unschedulable=(Unschedulable("default/lo", "x"),),
    )
    held = (
        pod("g-0", priority=100, gang="g", min_available=2, nominated="n0"),
        gang[1],
        pod("lo", priority=5),
    )
    top = pod("top", priority=1000, policy=PREEMPT_NEVER, t=1.0)
    waits = tuple(Unschedulable(f"default/g-{j}", "x") for j in range(2))
    taken = Plan(binds=(bind("top", "n0"),), unschedulable=(*waits, Unschedulable("default/lo", "x")))
    given_back = Plan(binds=(bind("lo", "n1"),), unschedulable=waits)
    run = [
        Step(first, evicts),
        Step(Snapshot(nodes, (*held, top), now=5.0), taken),
        Step(
            Snapshot(nodes, (*gang, pod("lo", priority=5), pod("top", on="n0", priority=1000)), now=10.0),
            given_back,
        ),
    ]
    assert check_no_wasted_eviction(run, SCOPE) == []
    alone = [
        Step(first, evicts),
        Step(Snapshot(nodes, held, now=5.0), Plan(binds=(bind("lo", "n1"),), unschedulable=waits)),
    ]
    found = check_no_wasted_eviction(alone, SCOPE)
    assert found and all(f.startswith(INV8) for f in found), found


def test_fewest_victims_counts_a_gang_member_that_may_go_alone_as_one() -> None:
    """SPEC 6: a running gang of 3 with min-available 2 may lose one member and stay whole enough:
    evicting that one member (1 pod) is fewer than evicting a gang of 2 (2 pods)."""
    snapshot = Snapshot(
        tuple(node(f"n{i}") for i in range(5)),
        (
            *(pod(f"r-{j}", on=f"n{j}", priority=10, gang="r", min_available=2) for j in range(3)),
            *(pod(f"s-{j}", on=f"n{3 + j}", priority=10, gang="s", min_available=2) for j in range(2)),
            pod("p", priority=100),
        ),
    )
    one = Plan(nominations=(nominate("p", "n0"),), evictions=(evict("r-0", "n0", by="p"),))
    assert check_fewest_victims(snapshot, one, SCOPE) == []
    two = Plan(
        nominations=(nominate("p", "n3"),), evictions=(evict("s-0", "n3", by="p"), evict("s-1", "n4", by="p"))
    )
    assert check_fewest_victims(snapshot, two, SCOPE)[0].startswith(INV10)


def test_run_pass_lets_one_reserving_gang_be_placed_partially_and_no_other() -> None:
    """`check_run_pass` reads SPEC 9.2 with 6a: a gang that has waited `--reserve-after` may hold
    free nodes short of its need; not with reserving off, not before it has waited, not on an
    occupied node, and never two such gangs in one pass."""
    nodes = (node("n0"), node("n1"), node("n2"))
    gang = [pod(f"big-{j}", priority=PRIORITY, gang="big", min_available=3) for j in range(3)]
    other = [pod(f"two-{j}", priority=PRIORITY, gang="two", min_available=2, t=1.0) for j in range(2)]
    snapshot = Snapshot(nodes, (*gang, *other, pod("s", on="n2", priority=PRIORITY)), now=30.0)
    holds = Plan(
        nominations=(Nominate("default/big-0", "n0"), Nominate("default/big-1", "n1")),
        unschedulable=tuple(
            Unschedulable(k, "waits") for k in ("default/big-2", "default/two-0", "default/two-1")
        ),
    )
    assert check_run_pass(snapshot, holds, Settings(reserve_after=30.0)) == []
    assert any(p.startswith(INV2) for p in check_run_pass(snapshot, holds, Settings(reserve_after=None)))
    assert any(p.startswith(RESERVE) for p in check_run_pass(snapshot, holds, Settings(reserve_after=31.0)))
    occupied = Plan(
        nominations=(Nominate("default/big-0", "n0"), Nominate("default/big-1", "n2")),
        unschedulable=tuple(
            Unschedulable(k, "waits") for k in ("default/big-2", "default/two-0", "default/two-1")
        ),
    )
    assert any(
        p.startswith(RESERVE) for p in check_run_pass(snapshot, occupied, Settings(reserve_after=30.0))
    )
    two = Plan(
        nominations=(Nominate("default/big-0", "n0"), Nominate("default/two-0", "n1")),
        unschedulable=tuple(
            Unschedulable(k, "waits") for k in ("default/big-1", "default/big-2", "default/two-1")
        ),
    )
    assert any(p.startswith(RESERVE) for p in check_run_pass(snapshot, two, Settings(reserve_after=0.0)))


def test_fewest_victims_flags_more_victims_or_higher_ones_than_needed() -> None:
    """`check_fewest_victims`: evicting gang `b` (3) where gang `a` (2) would do breaks 9.10; evicting
    a pod of priority 50 where one of 10 would do breaks 'lowest first'; leaving a unit pending that
    could preempt, or preempting for one that fits on a free node, breaks SPEC 6."""
    fewest = Plan(
        nominations=(nominate("p", "n02"),),
        evictions=(evict("a-0", "n02", by="p"), evict("a-1", "n03", by="p")),
    )
    assert check_fewest_victims(TWO_GANGS, fewest, SCOPE) == []
    more = Plan(
        nominations=(nominate("p", "n00"),),
        evictions=(evict("b-0", "n00", by="p"), evict("b-1", "n01", by="p"), evict("b-2", "n04", by="p")),
    )
    found = check_fewest_victims(TWO_GANGS, more, SCOPE)
    assert len(found) == 1 and found[0].startswith(INV10) and "would evict 2" in found[0]
    levels = Snapshot(
        (node("n0"), node("n1")),
        (pod("mid", on="n0", priority=50), pod("low", on="n1", priority=10), pod("p", priority=100)),
    )
    higher = Plan(nominations=(nominate("p", "n0"),), evictions=(evict("mid", "n0", by="p"),))
    assert check_fewest_victims(levels, higher, SCOPE)[0].startswith(LOWEST)
    idle = Plan(unschedulable=(Unschedulable("default/p", "x"),))
    assert "stays pending" in check_fewest_victims(levels, idle, SCOPE)[0]
    shy = Snapshot(levels.nodes, (*levels.pods[:2], pod("p", priority=100, policy=PREEMPT_NEVER)))
    assert check_fewest_victims(shy, idle, SCOPE) == []
    roomy = Snapshot((*levels.nodes, node("n2")), levels.pods)
    assert "fits on free nodes" in check_fewest_victims(roomy, higher, SCOPE)[0]


# --- a model of SPEC 5 and 6a, to check the starvation checker -----------------------------------


def model_plan(snapshot: Snapshot, scope: Settings) -> Plan:
    """SPEC 5 and 6a where nothing can preempt (one priority): units in pass order take their own
    reserved nodes, then free ones in name order, and are bound when they fit whole; the first unit
    that does not fit, has waited `--reserve-after` and could be placed reserves what it can get.
    A model to test the checkers with, not a planner: no preemption, no quorum, no matching."""
    view = View(snapshot, scope)
    units = pending_units(view)
    used = {n for n in view.eligible if view.on_node.get(n)}
    held = {p.nominated_node: view.unit(p) for p in view.pending.values() if p.nominated_node}
    binds, nominations, waits = list[Bind](), list[Nominate](), list[Unschedulable]()
    reserving = None
    for unit in pass_order(view, units):
        members, k = units[unit], need(view, unit, units[unit])
        got: dict[str, str] = {}
        for m in members:
            own = m.nominated_node
            if held.get(own) == unit and own not in used and view.feasible(m, own):
                got[m.key] = own
        for m in members:
            if len(got) >= k or m.key in got:
                continue
            free = [
                n for n in sorted(view.eligible) if n not in used and n not in held and n not in got.values()
            ]
            first = next((n for n in free if view.feasible(m, n)), None)
            if first is not None:
                got[m.key] = first
        if len(got) >= k:
            binds += [Bind(p, n) for p, n in got.items()]
            used.update(got.values())
            continue
        waited = (
            scope.reserve_after is not None
            and waiting_since(view, unit, members) + scope.reserve_after <= view.snapshot.now
        )
        if reserving is None and waited and could_be_placed(view, unit, members):
            reserving = unit
            nominations += [Nominate(p, n) for p, n in got.items()]
            used.update(got.values())
            since = waiting_since(view, unit, members) + (scope.reserve_after or 0.0)
            reason = (
                f"{unit[0]} {unit[1]}/{unit[2]} reserves {len(got)} of the {k} nodes it needs "
                f"(for {view.snapshot.now - since:g}s)"
            )
            waits += [Unschedulable(m.key, reason) for m in members if m.key not in got]
        else:
            waits += [Unschedulable(m.key, "waits") for m in members]
    return Plan(
        tuple(sorted(binds, key=lambda b: b.pod)),
        tuple(sorted(nominations, key=lambda n: n.pod)),
        (),
        tuple(sorted(waits, key=lambda u: u.pod)),
    )


def drive(stream: Stream, scope: Settings, *, model_scope: Settings | None = None) -> Driver:
    """The model through a stream, 40 passes."""
    driver = Driver.of(
        stream.snapshot,
        settings=model_scope or scope,
        tick=TICK,
        lifetimes=stream.lifetimes,
        arrivals=stream.arrivals,
        planner=model_plan,
    )
    driver.run(40)
    return driver


@pytest.mark.parametrize(("reserve_after", "first_held"), [(0.0, 5.0), (20.0, 20.0), (30.0, 30.0)])
def test_the_model_passes_the_named_cases_of_reserving(reserve_after: float, first_held: float) -> None:
    """The SPEC 6a cases above ask for what SPEC says, not for the impossible: the model passes
    them too."""
    runs_the_starving_gang(starving_gang(reserve_after, planner=model_plan), reserve_after, first_held)
    reserves_one_at_a_time(model_plan)


@RUNS
@given(streams(), st.sampled_from((0.0, 10.0, 30.0)))
def test_the_checkers_find_no_fault_in_runs_of_a_model_of_spec(stream: Stream, reserve_after: float) -> None:
    """`check_no_starvation` and `check_run_pass` pass every run of the model: SPEC 6a and 9.9 can be
    met as the checkers read them (a reading too strict would fail a correct planner)."""
    scope = Settings(reserve_after=reserve_after)
    driver = drive(stream, scope)
    found = check_no_starvation(driver.history, scope)
    assert not found, report(found, driver)
    holds_on_every_pass(driver, scope)


def test_no_starvation_flags_the_starving_gang() -> None:
    """With reserving off in the model, the gang of `starving_gang_stream` never runs: flagged."""
    scope = Settings(reserve_after=10.0)
    driver = drive(starving_gang_stream(), scope, model_scope=Settings(reserve_after=None))
    found = check_no_starvation(driver.history, scope)
    assert len(found) == 1 and found[0].startswith(INV9) and "default/big0" in found[0], found
