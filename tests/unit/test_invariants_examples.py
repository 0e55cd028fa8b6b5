"""Hand-made examples for the SPEC 9 checkers: what the property tests found, and the checkers' own tests.

The first part pins the minimal clusters the property tests shrank to (planner bugs are marked
`xfail(strict=True)`, so that the fix shows up as an unexpected pass and the mark is removed).
The second part checks the checkers: each one must flag a plan that breaks its invariant, or a
green property test would prove nothing.
"""

from __future__ import annotations

from custom_scheduler.model import (
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
from tests.unit.builders import pod
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
            pod("a", gang="g1"),
            pod("b", gang="g1", min_available=2, nominated="n0"),
            pod("v", on="n0", deleted_at=100.0),
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
            pod("r", priority=50, policy=PREEMPT_NEVER, nominated="n0"),
            pod("s", priority=50),
            pod("v", on="n0", priority=10),
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
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1")),
        pods=(
            pod("h", priority=500),
            pod("m", gang="g", min_available=2, nominated="n0"),
            pod("o", on="n1", gang="g", min_available=2),
            pod("t", on="n0", deleted_at=100.0),
        ),
    )
    result = plan(snapshot, settings=SCOPE)
    assert result.evictions == (Evict("default/o", "n1", "default/h"),)
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
            pod("p", priority=1000, nominated="n0"),
            pod("q", priority=500),
            pod("v", on="n0", priority=0),
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
    snapshot = Snapshot(
        nodes=(Node("n0"), Node("n1"), Node("n2")),
        pods=(
            pod("s", priority=50),
            pod("t", on="n0", deleted_at=100.0, priority=10),
            pod("m", priority=0, gang="g1", min_available=2, nominated="n0"),
            pod("v", on="n1", priority=0),
            pod("w", on="n2", priority=50),
            pod("x", priority=1000, gang="g1"),
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
            pod("never", priority=500, policy=PREEMPT_NEVER),
            pod("pre", priority=100),
            pod("v0", on="n0", priority=0),
            pod("v1", on="n1", priority=0),
        ),
    )
    first = plan(snapshot, settings=SCOPE)
    assert first.evictions == (Evict("default/v0", "n0", "default/pre"),)
    second = plan(apply(snapshot, first), settings=SCOPE)
    assert Bind("default/never", "n0") in second.binds
    assert [e.pod for e in second.evictions] == ["default/v1"]
    assert check_replan(snapshot, first, second, SCOPE) == []
    assert check_pass(snapshot, first, SCOPE) == []


# --- the checkers catch what they should -----------------------------------------------------------

TWO_NODES = (Node("n0"), Node("n1"))


def test_one_pod_per_node_flags_a_bind_next_to_a_terminating_pod() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(pod("v", on="n0", deleted_at=100.0), pod("p")))
    assert check_one_pod_per_node(snapshot, Plan(binds=(Bind("default/p", "n0"),)), SCOPE)
    assert not check_one_pod_per_node(snapshot, Plan(nominations=(Nominate("default/p", "n0"),)), SCOPE)
    assert check_one_pod_per_node(
        snapshot, Plan(nominations=(Nominate("default/p", "n0"), Nominate("default/q", "n0"))), SCOPE
    )


def test_all_or_nothing_flags_a_gang_placed_below_min_available_or_half_bound() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(pod("x", gang="g", min_available=2), pod("y", gang="g")),
    )
    assert check_all_or_nothing(snapshot, Plan(binds=(Bind("default/x", "n0"),)), SCOPE)
    half = Plan(binds=(Bind("default/x", "n0"),), nominations=(Nominate("default/y", "n1"),))
    assert check_all_or_nothing(snapshot, half, SCOPE)
    whole = Plan(binds=(Bind("default/x", "n0"), Bind("default/y", "n1")))
    assert not check_all_or_nothing(snapshot, whole, SCOPE)


def test_evictions_justified_flags_equal_priority_a_missing_nominee_and_policy_never() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(
            pod("hi", priority=10),
            pod("shy", priority=10, policy=PREEMPT_NEVER),
            pod("lo", on="n0", priority=5),
            pod("eq", on="n1", priority=10),
        ),
    )
    good = Plan(
        nominations=(Nominate("default/hi", "n0"),), evictions=(Evict("default/lo", "n0", "default/hi"),)
    )
    assert not check_evictions_justified(snapshot, good, SCOPE)
    equal = Plan(
        nominations=(Nominate("default/hi", "n1"),), evictions=(Evict("default/eq", "n1", "default/hi"),)
    )
    assert check_evictions_justified(snapshot, equal, SCOPE)
    elsewhere = Plan(
        nominations=(Nominate("default/hi", "n1"),), evictions=(Evict("default/lo", "n0", "default/hi"),)
    )
    assert check_evictions_justified(snapshot, elsewhere, SCOPE)
    never = Plan(
        nominations=(Nominate("default/shy", "n0"),), evictions=(Evict("default/lo", "n0", "default/shy"),)
    )
    assert check_evictions_justified(snapshot, never, SCOPE)


def test_gang_integrity_flags_a_running_gang_left_broken() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(
            pod("hi", priority=10),
            pod("m0", on="n0", gang="g", min_available=2),
            pod("m1", on="n1", gang="g", min_available=2),
        ),
    )
    broken = Plan(
        nominations=(Nominate("default/hi", "n0"),), evictions=(Evict("default/m0", "n0", "default/hi"),)
    )
    assert check_gang_integrity(snapshot, broken, SCOPE)
    whole = Plan(
        nominations=(Nominate("default/hi", "n0"),),
        evictions=(Evict("default/m0", "n0", "default/hi"), Evict("default/m1", "n1", "default/hi")),
    )
    assert not check_gang_integrity(snapshot, whole, SCOPE)
    assert not check_evictions_justified(snapshot, whole, SCOPE)


def test_work_conserving_flags_a_singleton_left_beside_a_free_node() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(pod("p"), pod("r", on="n0")))
    assert check_work_conserving(snapshot, Plan(unschedulable=(Unschedulable("default/p", "no"),)), SCOPE)
    reserved = Snapshot(nodes=TWO_NODES, pods=(*snapshot.pods, pod("q", nominated="n1")))
    plan_ = Plan(unschedulable=(Unschedulable("default/p", "no"), Unschedulable("default/q", "waits")))
    assert not check_work_conserving(reserved, plan_, SCOPE)


def test_accounted_flags_missing_duplicate_foreign_and_unsorted_entries() -> None:
    snapshot = Snapshot(
        nodes=TWO_NODES,
        pods=(pod("p"), pod("q"), Pod("default", "other", uid="o", scheduler_name="default-scheduler")),
    )
    assert check_accounted(snapshot, Plan(binds=(Bind("default/p", "n0"),)), SCOPE)  # q missing
    both = Plan(
        binds=(Bind("default/p", "n0"),),
        unschedulable=(Unschedulable("default/p", "x"), Unschedulable("default/q", "y")),
    )
    assert check_accounted(snapshot, both, SCOPE)
    foreign = Plan(
        binds=(Bind("default/other", "n1"), Bind("default/p", "n0")),
        unschedulable=(Unschedulable("default/q", "y"),),
    )
    assert check_accounted(snapshot, foreign, SCOPE)
    empty_reason = Plan(binds=(Bind("default/p", "n0"),), unschedulable=(Unschedulable("default/q", " "),))
    assert check_accounted(snapshot, empty_reason, SCOPE)
    fine = Plan(binds=(Bind("default/p", "n0"), Bind("default/q", "n1")))
    assert not check_accounted(snapshot, fine, SCOPE)


def test_replan_flags_a_nominee_not_bound_once_its_node_is_free() -> None:
    snapshot = Snapshot(nodes=TWO_NODES, pods=(pod("hi", priority=10), pod("lo", on="n0")))
    first = Plan(
        nominations=(Nominate("default/hi", "n0"),), evictions=(Evict("default/lo", "n0", "default/hi"),)
    )
    after = apply(snapshot, first)
    assert [p.key for p in after.pods] == ["default/hi"] and after.pods[0].nominated_node == "n0"
    assert check_replan(snapshot, first, Plan(unschedulable=(Unschedulable("default/hi", "x"),)), SCOPE)
    assert check_replan(snapshot, first, Plan(binds=(Bind("default/hi", "n1"),)), SCOPE)
    assert not check_replan(snapshot, first, Plan(binds=(Bind("default/hi", "n0"),)), SCOPE)
