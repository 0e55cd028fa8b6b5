"""Hand-made examples for the SPEC 9 checkers: what the property tests found, and the checkers' own tests.

The first part pins the minimal clusters the property tests shrank to (planner bugs are marked
`xfail(strict=True)`, so that the fix shows up as an unexpected pass and the mark is removed).
The second part checks the checkers: each one must flag a plan that breaks its invariant, or a
green property test would prove nothing.
"""

from __future__ import annotations

from custom_scheduler.model import (
    GROUP_NAME,
    MIN_AVAILABLE,
    PREEMPT_NEVER,
    Bind,
    Evict,
    Node,
    Nominate,
    Plan,
    Pod,
    Snapshot,
    Unschedulable,
)
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings
from tests.unit.test_invariants import (
    apply,
    check_accounted,
    check_all_or_nothing,
    check_evictions_justified,
    check_gang_integrity,
    check_one_pod_per_node,
    check_pass,
    check_replan,
    check_reservations,
    check_work_conserving,
)

SCOPE = Settings()


def pending(name: str, **kw: object) -> Pod:
    """A pending pod of ours in namespace `a`."""
    return Pod("a", name, uid=name, **kw)  # type: ignore[arg-type]


def running(name: str, on: str, **kw: object) -> Pod:
    """A running pod of ours in namespace `a`."""
    return Pod("a", name, uid=name, phase="Running", node_name=on, **kw)  # type: ignore[arg-type]


def terminating(name: str, on: str, **kw: object) -> Pod:
    """A pod of ours still on `on` while it terminates."""
    return running(name, on, deleting=True, deletion_time=100.0, **kw)


def gang(group: str, min_available: int | None = None) -> dict[str, str]:
    """Gang annotations."""
    out = {GROUP_NAME: group}
    if min_available is not None:
        out[MIN_AVAILABLE] = str(min_available)
    return out


# --- found by the property tests -----------------------------------------------------------------


def test_a_waiting_nominee_of_a_gang_below_quorum_is_not_placed() -> None:
    """SPEC 4 and 9.2: one node, holding a terminating pod; gang g1 has two pending members, one of
    them (min-available 2) already nominated to that node. Only one node exists, so the gang
    cannot reach 2: none of its members may be placed, and a nomination is a placement (SPEC 6).
    The planner keeps `b` nominated to n0 while `a` is unschedulable ("needs 2 nodes, 1 can be had").
    """
    snapshot = Snapshot(
        nodes=(Node("n0"),),
        pods=(
            pending("a", annotations=gang("g1")),
            pending("b", annotations=gang("g1", 2), nominated_node="n0"),
            terminating("v", "n0"),
        ),
    )
    result = plan(snapshot, settings=SCOPE)
    assert check_all_or_nothing(snapshot, result, SCOPE) == []


def test_a_node_reserved_for_a_nominee_is_not_taken_by_an_equal_priority_unit() -> None:
    """SPEC 6: `r` (50, policy Never) is nominated to n0, which holds `v` (10). `s` (50) comes after `r`
    in the pass order (same age, name `s` > `r`). n0 is reserved for `r`: only `r` or a unit of strictly
    higher priority may use it. The planner lets `s` evict `v` and nominates `s` to n0. (With `s` older
    than `r`, so ahead of it, the planner does respect the reservation: the outcome depends on names.)
    """
    snapshot = Snapshot(
        nodes=(Node("n0"),),
        pods=(
            pending("r", priority=50, preemption_policy=PREEMPT_NEVER, nominated_node="n0"),
            pending("s", priority=50),
            running("v", "n0", priority=10),
        ),
    )
    result = plan(snapshot, settings=SCOPE)
    assert check_reservations(snapshot, result, SCOPE) == []


def test_a_gang_whose_members_are_evicted_now_places_no_pending_member() -> None:
    """SPEC 4 and 9.2: gang g (min-available 2) has `o` running on n1 and `m` pending, nominated to n0
    (which holds the terminating `t`). `h` (500) preempts `o` (gang priority 0). After this pass g has
    no member left running, so placing `m` alone leaves the gang partially placed: 0 + 1 < 2. The
    planner keeps `m` nominated to n0 (it counts `o`, evicted in this very pass, as occupying).
    """
    g = gang("g", 2)
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1")),
        pods=(
            pending("h", priority=500),
            pending("m", annotations=g, nominated_node="n0"),
            running("o", "n1", annotations=g),
            terminating("t", "n0"),
        ),
    )
    result = plan(snapshot, settings=SCOPE)
    assert result.evictions == (Evict("a/o", "n1", "a/h"),)
    assert check_all_or_nothing(snapshot, result, SCOPE) == []


def test_a_nominee_placed_elsewhere_does_not_block_preemption_on_its_old_node() -> None:
    """SPEC 9.5 (and 6): `p` (1000) is nominated to n0, which holds `v` (0); n1 is free. The pass binds
    `p` to n1, then `q` (500) finds n0 "reserved for nominated pods" and stays pending, though `p`,
    strictly higher and ahead of `q`, no longer needs n0. The next pass evicts `v` for `q`: an
    eviction that applying the plan and planning again should not produce. The first pass should
    have nominated `q` to n0 and evicted `v` then.
    """
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1")),
        pods=(
            pending("p", priority=1000, nominated_node="n0"),
            pending("q", priority=500),
            running("v", "n0", priority=0),
        ),
    )
    first = plan(snapshot, settings=SCOPE)
    second = plan(apply(snapshot, first), settings=SCOPE)
    assert check_replan(snapshot, first, second, SCOPE) == []


def test_a_gang_held_back_to_wait_does_not_preempt_on_the_next_pass() -> None:
    """SPEC 9.5 and 6 (v2): gang g1 (priority 1000 from `x`) has `m` nominated to n0, which holds the
    terminating `t`. Version 1 held the gang back in pass one yet dropped `m`'s nomination; `s` (50)
    evicted `v` on n1; in pass two the gang took `s`'s freed n1 (strictly higher) and evicted `w`:
    `v` went for nothing. A waiting unit keeps what it holds and places the rest of its need in the
    same pass, by preemption if need be: pass one evicts `v` for the gang, pass two binds it.
    """
    g1 = gang("g1")
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1"), Node("n2")),
        pods=(
            pending("s", priority=50),
            terminating("t", "n0", priority=10),
            pending("m", priority=0, annotations=gang("g1", 2), nominated_node="n0"),
            running("v", "n1", priority=0),
            running("w", "n2", priority=50),
            pending("x", priority=1000, annotations=g1),
        ),
    )
    first = plan(snapshot, settings=SCOPE)
    second = plan(apply(snapshot, first), settings=SCOPE)
    assert check_replan(snapshot, first, second, SCOPE) == []


def test_a_higher_unit_taking_over_a_reservation_lets_the_displaced_nominee_preempt_again() -> None:
    """SPEC 6 vs 9.5: `never` (500, policy Never) cannot preempt in the first pass, so `pre` (100)
    evicts v0 and is nominated to n0. Once v0 is gone, n0 is free and reserved for `pre`, and `never`,
    of strictly higher priority, takes it over (SPEC 6 allows it); `pre` then preempts v1. SPEC 9.5
    ("evicts nothing new") cannot hold here; the checker allows evictions by a displaced nominee.
    """
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1")),
        pods=(
            pending("never", priority=500, preemption_policy=PREEMPT_NEVER),
            pending("pre", priority=100),
            running("v0", "n0", priority=0),
            running("v1", "n1", priority=0),
        ),
    )
    first = plan(snapshot, settings=SCOPE)
    assert first.evictions == (Evict("a/v0", "n0", "a/pre"),)
    second = plan(apply(snapshot, first), settings=SCOPE)
    assert Bind("a/never", "n0") in second.binds
    assert [e.pod for e in second.evictions] == ["a/v1"]
    assert check_replan(snapshot, first, second, SCOPE) == []
    assert check_pass(snapshot, first, SCOPE) == []


# --- the checkers catch what they should -----------------------------------------------------------

TWO_NODES = (Node("n0"), Node("n1"))


def test_one_pod_per_node_flags_a_bind_next_to_a_terminating_pod() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(terminating("v", "n0"), pending("p")))
    assert check_one_pod_per_node(snapshot, Plan(binds=(Bind("a/p", "n0"),)), SCOPE)
    assert not check_one_pod_per_node(snapshot, Plan(nominations=(Nominate("a/p", "n0"),)), SCOPE)
    assert check_one_pod_per_node(
        snapshot, Plan(nominations=(Nominate("a/p", "n0"), Nominate("a/q", "n0"))), SCOPE
    )


def test_all_or_nothing_flags_a_gang_placed_below_min_available_or_half_bound() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(pending("x", annotations=gang("g", 2)), pending("y", annotations=gang("g"))),
    )
    assert check_all_or_nothing(snapshot, Plan(binds=(Bind("a/x", "n0"),)), SCOPE)
    half = Plan(binds=(Bind("a/x", "n0"),), nominations=(Nominate("a/y", "n1"),))
    assert check_all_or_nothing(snapshot, half, SCOPE)
    whole = Plan(binds=(Bind("a/x", "n0"), Bind("a/y", "n1")))
    assert not check_all_or_nothing(snapshot, whole, SCOPE)


def test_evictions_justified_flags_equal_priority_a_missing_nominee_and_policy_never() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(
            pending("hi", priority=10),
            pending("shy", priority=10, preemption_policy=PREEMPT_NEVER),
            running("lo", "n0", priority=5),
            running("eq", "n1", priority=10),
        ),
    )
    good = Plan(nominations=(Nominate("a/hi", "n0"),), evictions=(Evict("a/lo", "n0", "a/hi"),))
    assert not check_evictions_justified(snapshot, good, SCOPE)
    equal = Plan(nominations=(Nominate("a/hi", "n1"),), evictions=(Evict("a/eq", "n1", "a/hi"),))
    assert check_evictions_justified(snapshot, equal, SCOPE)
    elsewhere = Plan(nominations=(Nominate("a/hi", "n1"),), evictions=(Evict("a/lo", "n0", "a/hi"),))
    assert check_evictions_justified(snapshot, elsewhere, SCOPE)
    never = Plan(nominations=(Nominate("a/shy", "n0"),), evictions=(Evict("a/lo", "n0", "a/shy"),))
    assert check_evictions_justified(snapshot, never, SCOPE)


def test_gang_integrity_flags_a_running_gang_left_broken() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(
            pending("hi", priority=10),
            running("m0", "n0", annotations=gang("g", 2)),
            running("m1", "n1", annotations=gang("g", 2)),
        ),
    )
    broken = Plan(nominations=(Nominate("a/hi", "n0"),), evictions=(Evict("a/m0", "n0", "a/hi"),))
    assert check_gang_integrity(snapshot, broken, SCOPE)
    whole = Plan(
        nominations=(Nominate("a/hi", "n0"),),
        evictions=(Evict("a/m0", "n0", "a/hi"), Evict("a/m1", "n1", "a/hi")),
    )
    assert not check_gang_integrity(snapshot, whole, SCOPE)
    assert not check_evictions_justified(snapshot, whole, SCOPE)


def test_work_conserving_flags_a_singleton_left_beside_a_free_node() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(pending("p"), running("r", "n0")))
    assert check_work_conserving(snapshot, Plan(unschedulable=(Unschedulable("a/p", "no"),)), SCOPE)
    reserved = Snapshot(nodes=TWO_NODES, pods=(*snapshot.pods, pending("q", nominated_node="n1")))
    plan_ = Plan(unschedulable=(Unschedulable("a/p", "no"), Unschedulable("a/q", "waits")))
    assert not check_work_conserving(reserved, plan_, SCOPE)


def test_accounted_flags_missing_duplicate_foreign_and_unsorted_entries() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(pending("p"), pending("q"), Pod("a", "other", uid="o", scheduler_name="default-scheduler")),
    )
    assert check_accounted(snapshot, Plan(binds=(Bind("a/p", "n0"),)), SCOPE)  # q missing
    both = Plan(
        binds=(Bind("a/p", "n0"),), unschedulable=(Unschedulable("a/p", "x"), Unschedulable("a/q", "y"))
    )
    assert check_accounted(snapshot, both, SCOPE)
    foreign = Plan(
        binds=(Bind("a/other", "n1"), Bind("a/p", "n0")), unschedulable=(Unschedulable("a/q", "y"),)
    )
    assert check_accounted(snapshot, foreign, SCOPE)
    empty_reason = Plan(binds=(Bind("a/p", "n0"),), unschedulable=(Unschedulable("a/q", " "),))
    assert check_accounted(snapshot, empty_reason, SCOPE)
    fine = Plan(binds=(Bind("a/p", "n0"), Bind("a/q", "n1")))
    assert not check_accounted(snapshot, fine, SCOPE)


def test_replan_flags_a_nominee_not_bound_once_its_node_is_free() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(pending("hi", priority=10), running("lo", "n0")))
    first = Plan(nominations=(Nominate("a/hi", "n0"),), evictions=(Evict("a/lo", "n0", "a/hi"),))
    after = apply(snapshot, first)
    assert [p.key for p in after.pods] == ["a/hi"] and after.pods[0].nominated_node == "n0"
    assert check_replan(snapshot, first, Plan(unschedulable=(Unschedulable("a/hi", "x"),)), SCOPE)
    assert check_replan(snapshot, first, Plan(binds=(Bind("a/hi", "n1"),)), SCOPE)
    assert not check_replan(snapshot, first, Plan(binds=(Bind("a/hi", "n0"),)), SCOPE)
