"""SPEC section 9, checked on generated clusters: every invariant, with and without scope flags."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_scheduler.model import Snapshot
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings, parse_selector
from tests.unit.invariants import (
    accounted,
    after_applying,
    all_or_nothing,
    evictions_justified,
    one_pod_per_node,
    replan_binds_nominees,
    work_conserving,
)
from tests.unit.strategies import clusters, make_cluster

SCOPES = st.sampled_from(
    [
        Settings(),
        Settings(namespace="a"),
        Settings(node_selector=parse_selector("pool=a")),
        Settings(scheduler_name="someone-else"),
    ]
)
CHECK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_none(problems: list[str], invariant: str) -> None:
    assert not problems, f"{invariant}:\n  " + "\n  ".join(problems[:10])


@CHECK
@given(clusters(double_booking=True), SCOPES)
def test_no_node_ends_a_pass_with_two_of_our_pods(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _assert_none(one_pod_per_node(snapshot, result, scope), "1. one managed pod per eligible node")


@CHECK
@given(clusters(), SCOPES)
def test_no_gang_is_partially_placed(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _assert_none(all_or_nothing(snapshot, result, scope), "2. all-or-nothing")


@CHECK
@given(clusters(), SCOPES)
def test_every_eviction_makes_room_for_a_higher_nominee(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _assert_none(evictions_justified(snapshot, result, scope), "3. evictions only for a strictly higher unit")


@CHECK
@given(clusters(), SCOPES, st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_input_order(
    snapshot: Snapshot, scope: Settings, rng: random.Random
) -> None:
    nodes, pods, classes = list(snapshot.nodes), list(snapshot.pods), list(snapshot.priority_classes)
    rng.shuffle(nodes)
    rng.shuffle(pods)
    rng.shuffle(classes)
    again = dataclasses.replace(
        snapshot, nodes=tuple(nodes), pods=tuple(pods), priority_classes=tuple(classes)
    )
    assert plan(again, settings=scope) == plan(snapshot, settings=scope), "4. order independence"


@CHECK
@given(clusters(), SCOPES)
def test_applying_and_planning_again_binds_the_nominees(snapshot: Snapshot, scope: Settings) -> None:
    first = plan(snapshot, settings=scope)
    second = plan(after_applying(snapshot, first), settings=scope)
    _assert_none(
        replan_binds_nominees(snapshot, first, second, scope), "5. nominees bound, nothing new evicted"
    )


@CHECK
@given(clusters(), SCOPES)
def test_work_conserving(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _assert_none(work_conserving(snapshot, result, scope), "6. work-conserving")


@CHECK
@given(clusters(double_booking=True), SCOPES)
def test_every_pending_pod_has_one_outcome_and_a_reason(snapshot: Snapshot, scope: Settings) -> None:
    result = plan(snapshot, settings=scope)
    _assert_none(accounted(snapshot, result, scope), "every pending pod accounted for")


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32))
def test_all_invariants_on_large_clusters(seed: int) -> None:
    snapshot = make_cluster(random.Random(seed), 300, 1000)
    scope = Settings()
    result = plan(snapshot, settings=scope)
    for check in (one_pod_per_node, all_or_nothing, evictions_justified, work_conserving, accounted):
        _assert_none(check(snapshot, result, scope), check.__name__)
    second = plan(after_applying(snapshot, result), settings=scope)
    _assert_none(replan_binds_nominees(snapshot, result, second, scope), "replan")
