"""The cache: relevance of changes, relists, and assumed effects until the watch confirms them."""

from __future__ import annotations

import dataclasses

from custom_scheduler.cache import Cache
from custom_scheduler.model import Constraints, Node, PriorityClass
from tests.unit import builders
from tests.unit.builders import node


def test_put_reports_relevant_changes_only() -> None:
    cache = Cache()
    pod = builders.pod("a")
    assert cache.pods.put(pod) is True
    # Our own condition being written is not a reason to plan again.
    assert cache.pods.put(dataclasses.replace(pod, scheduled_message="waiting")) is False
    assert cache.pods.put(dataclasses.replace(pod, node_name="n1")) is True
    # A bound pod occupies its node from the bind: its starting to run changes no plan (SPEC 8
    # lists added, deleted, bound, finished); only a pass per kubelet update would follow.
    assert cache.pods.put(dataclasses.replace(pod, node_name="n1", phase="Running")) is False
    assert cache.pods.put(dataclasses.replace(pod, node_name="n1", phase="Succeeded")) is True
    # A pod's scheduling gates removed: it is ready to be scheduled now.
    gated = builders.pod("g", gated=True)
    assert cache.pods.put(gated) is True
    assert cache.pods.put(dataclasses.replace(gated, gated=False)) is True
    assert cache.pods.delete(pod) is True
    assert cache.pods.delete(pod) is False


def test_node_changes_that_matter() -> None:
    cache = Cache()
    assert cache.nodes.put(node("n1")) is True
    assert cache.nodes.put(node("n1")) is False
    assert cache.nodes.put(node("n1", cordoned=True)) is True
    assert cache.nodes.put(node("n1", cordoned=True, ready=False)) is True
    assert cache.classes.put(PriorityClass("hi", 10)) is True
    assert cache.classes.put(PriorityClass("hi", 11)) is True


def test_replace_is_the_truth_and_reports_differences() -> None:
    cache = Cache()
    cache.nodes.replace([node("n1"), node("n2")])
    assert cache.nodes.replace([node("n2"), node("n1")]) is False
    assert cache.nodes.replace([node("n1")]) is True
    assert set(cache.nodes.items) == {"n1"}
    assert cache.nodes.replace([Node("n1", ready=False)]) is True


def test_assumed_bind_occupies_until_confirmed() -> None:
    cache = Cache(assume_ttl=30)
    pod = builders.pod("a")
    cache.pods.put(pod)
    cache.assume_bound(pod.uid, "n1", now=100)
    (seen,) = cache.snapshot(now=101).pods
    assert seen.node_name == "n1"
    assert cache.assumed == 1
    cache.pods.put(dataclasses.replace(pod, node_name="n1"))
    cache.snapshot(now=102)
    assert cache.assumed == 0


def test_assumed_effects_expire() -> None:
    cache = Cache(assume_ttl=30)
    pod = builders.pod("a")
    cache.pods.put(pod)
    cache.assume_bound(pod.uid, "n1", now=100)
    (seen,) = cache.snapshot(now=131).pods
    assert seen.node_name == ""
    assert cache.assumed == 0


def test_assumed_eviction_and_nomination() -> None:
    cache = Cache()
    victim, nominee = builders.pod("lo", on="n1"), builders.pod("hi")
    cache.pods.replace([victim, nominee])
    cache.assume_evicted(victim.uid, now=0)
    cache.assume_nominated(nominee.uid, "n1", now=0)
    pods = {p.name: p for p in cache.snapshot(now=1).pods}
    assert pods["lo"].deleting is True
    assert pods["hi"].nominated_node == "n1"
    # The watch catches up: nothing is assumed any more.
    cache.pods.put(dataclasses.replace(victim, deleting=True))
    cache.pods.put(dataclasses.replace(nominee, nominated_node="n1"))
    cache.snapshot(now=2)
    assert cache.assumed == 0


def test_assumption_about_a_deleted_pod_is_dropped() -> None:
    cache = Cache()
    pod = builders.pod("a")
    cache.pods.put(pod)
    cache.assume_bound(pod.uid, "n1", now=0)
    cache.pods.delete(pod)
    assert cache.snapshot(now=1).pods == ()
    assert cache.assumed == 0


def test_a_pod_whose_placing_was_refused_is_held_back_with_a_growing_delay() -> None:
    cache = Cache()
    refused, other = builders.pod("refused"), builders.pod("other")
    cache.pods.replace([refused, other])
    assert cache.hold_back(refused.uid, now=100.0) == 1.0
    assert [p.name for p in cache.snapshot(now=100.5).pods] == ["other"]
    assert [p.name for p in cache.held(now=100.5)] == ["refused"]
    assert {p.name for p in cache.snapshot(now=101.0).pods} == {"refused", "other"}  # planned again
    assert cache.hold_back(refused.uid, now=101.0) == 2.0
    for _ in range(10):
        delay = cache.hold_back(refused.uid, now=101.0)
    assert delay == 60.0
    cache.release(refused.uid)  # placed at last
    assert {p.name for p in cache.snapshot(now=101.5).pods} == {"refused", "other"}


def test_other_schedulers_pods_count_for_what_they_request() -> None:
    """SPEC 2: another scheduler's pod on a node matters for where it is, whether it has finished,
    and what it requests; the snapshot holds them beside ours."""
    cache = Cache()
    daemon = dataclasses.replace(
        builders.pod("daemon", on="n1", scheduler="other"),
        constraints=Constraints(requests=(("cpu", 500),)),
    )
    assert cache.others.put(daemon) is True
    assert cache.others.put(dataclasses.replace(daemon, scheduled_message="whatever")) is False
    assert cache.others.put(dataclasses.replace(daemon, phase="Succeeded")) is True
    assert (
        cache.others.put(dataclasses.replace(daemon, constraints=Constraints(requests=(("cpu", 900),))))
        is True
    )
    assert cache.pods.put(builders.pod("ours")) is True
    assert {p.name for p in cache.snapshot(now=0.0).pods} == {"daemon", "ours"}
