"""The soak's checker sees what it is there to see (a checker that cannot fail proves nothing)."""

from __future__ import annotations

import random
from typing import Any

from tests.harness.controlplane import HOLD_NOT_READY
from tests.soak import GROUP, MIN, Checker, Churn, Report


class Pods:
    """Answers the checker's GETs with crafted pods and nodes; records every other request."""

    def __init__(self, pods: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None) -> None:
        self.pods, self.nodes = pods, nodes or []
        self.events: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, Any]] = []

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        if method == "GET":
            if path.endswith("/events"):
                return 200, {"items": self.events}
            return 200, {"items": self.nodes if path == "/api/v1/nodes" else self.pods}
        self.writes.append((method, path, body))
        return 200, {}


def node(name: str, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(
    name: str,
    node: str = "",
    *,
    created: str = "2020-01-01T00:00:00Z",
    said: bool = False,
    gang: tuple[str, int] | None = None,
    leaving: bool = False,
    priority: int = 0,
    reason: str = "why",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if node else "Pending"}
    if said:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "message": reason}]
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created, "annotations": {}}
    if gang:
        metadata["annotations"] = {GROUP: gang[0], MIN: str(gang[1])}
    if leaving:
        metadata["deletionTimestamp"] = "2020-01-01T00:01:00Z"
    return {
        "metadata": metadata,
        "spec": {"schedulerName": "custom-scheduler", "nodeName": node, "priority": priority},
        "status": status,
    }


def preempted(victim: str, preemptor: str, node: str) -> dict[str, Any]:
    """The `Preempted` event the scheduler posts on a victim."""
    return {
        "metadata": {"uid": f"event-{victim}"},
        "involvedObject": {"name": victim},
        "reason": "Preempted",
        "message": f"Preempted by soak/{preemptor} on node {node}",
    }


async def check(pods: list[dict[str, Any]]) -> Report:
    report = Report()
    kube = Pods(pods)
    await Checker(kube, report, Churn(kube, random.Random(1), report)).check()  # type: ignore[arg-type]
    return report


async def test_two_pods_on_a_node_and_a_silent_pending_pod_are_violations() -> None:
    report = await check([pod("a", "n1"), pod("b", "n1"), pod("quiet")])
    assert report.violations == {"two_on_a_node": 1, "no_reason": 1}


async def test_a_healthy_picture_has_none() -> None:
    report = await check([pod("a", "n1"), pod("b", "n2"), pod("waiting", said=True)])
    assert not report.violations


async def test_nodes_not_ready_are_counted_in_node_seconds() -> None:
    now = [100.0]
    kube = Pods([], [node("a", ready=False), node("b", ready=False), node("c", ready=True)])
    report = Report()
    checker = Checker(kube, report, Churn(kube, random.Random(1), report), clock=lambda: now[0])  # type: ignore[arg-type]
    await checker.check()
    now[0] += 3.0
    kube.nodes = [node("a", ready=False), node("b", ready=True), node("c", ready=True)]
    await checker.check()
    now[0] += 2.0
    kube.nodes = [node("a", ready=True), node("b", ready=True), node("c", ready=True)]
    await checker.check()
    assert report.not_ready_seconds == 2 * 3.0 + 1 * 2.0  # what each check saw held until the next
    assert (report.checks, report.checks_with_not_ready, report.most_not_ready) == (3, 2, 2)
    assert "Nodes NotReady: 8 node-seconds, at most 2 at once; 2 of 3 checks saw one." in report.markdown()


async def test_a_broken_node_is_held_before_it_is_made_not_ready_and_healed_by_letting_go() -> None:
    kube = Pods([])
    report = Report()
    churn = Churn(kube, random.Random(1), report)  # type: ignore[arg-type]
    churn.nodes = ["n1", "n2", "n3", "n4"]
    await churn.break_node("n2")
    hold, not_ready = kube.writes
    # The hold first: KWOK would make a NotReady node it does not hold Ready again at once.
    assert hold == ("PATCH", "/api/v1/nodes/n2", {"metadata": {"annotations": {HOLD_NOT_READY: "soak"}}})
    assert not_ready[:2] == ("PATCH", "/api/v1/nodes/n2/status")
    assert not_ready[2]["status"]["conditions"][0] == {"type": "Ready", "status": "False", "reason": "Soak"}
    assert churn.not_ready == {"n2"}
    await churn.heal_node("n2")
    assert kube.writes[-1] == (
        "PATCH",
        "/api/v1/nodes/n2",
        {"metadata": {"annotations": {HOLD_NOT_READY: None}}},
    )
    assert churn.not_ready == set()


async def test_the_churn_heals_only_broken_nodes_and_breaks_at_most_half() -> None:
    kube = Pods([])
    report = Report()
    churn = Churn(kube, random.Random(3), report)  # type: ignore[arg-type]
    churn.nodes = [f"n{i}" for i in range(6)]
    for _ in range(3000):
        await churn.step()
        assert len(churn.not_ready) <= len(churn.nodes) // 2 and churn.not_ready <= set(churn.nodes)
    healed = [
        path
        for method, path, body in kube.writes
        if body == {"metadata": {"annotations": {HOLD_NOT_READY: None}}}
    ]
    assert report.actions["ready"] == len(healed) > 0 and report.actions["not_ready"] > 0


async def partial_gang_seen(pods: list[dict[str, Any]]) -> int:
    """Partial-gang violations after the same picture has held for 6 s."""
    now = [100.0]
    kube = Pods(pods)
    report = Report()
    checker = Checker(kube, report, Churn(kube, random.Random(1), report), clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(4):
        await checker.check()
        now[0] += 2.0
    return report.violations["partial_gang"]


async def test_a_gang_started_below_its_min_available_is_a_violation_once_it_lasts() -> None:
    assert (
        await partial_gang_seen([pod("g-0", "n1", gang=("g", 3)), pod("g-1", gang=("g", 3), said=True)]) == 1
    )


async def test_a_member_left_terminating_by_its_gangs_preemption_is_none() -> None:
    # The rest of the gang is gone; this one lingers (its node was removed) with a deletionTimestamp.
    assert await partial_gang_seen([pod("g-0", "n1", gang=("g", 3), leaving=True)]) == 0


async def wasted(first: list[dict[str, Any]], then: list[dict[str, Any]]) -> int:
    """Wasted evictions counted when `first` shows a victim preempted, and `then` who got its node."""
    kube = Pods(first, [node("n1", ready=True)])
    report = Report()
    checker = Checker(kube, report, Churn(kube, random.Random(1), report))  # type: ignore[arg-type]
    kube.events = [preempted("victim", "hi", "n1")]
    await checker.check()
    kube.pods = then
    await checker.check()
    return report.violations["wasted"]


async def test_a_node_freed_by_an_eviction_that_goes_to_an_equal_unit_is_a_wasted_eviction() -> None:
    """SPEC 9.8: the node freed for `hi` (100) went to `other` (100) while `hi` still waited."""
    first = [
        pod("victim", "n1", leaving=True),
        pod("hi", priority=100, said=True),
        pod("other", priority=100),
    ]
    then = [pod("hi", priority=100, said=True), pod("other", "n1", priority=100)]
    assert await wasted(first, then) == 1


async def test_a_freed_node_that_goes_to_its_preemptor_or_a_higher_unit_is_not() -> None:
    first = [pod("victim", "n1", leaving=True), pod("hi", priority=100, said=True)]
    assert await wasted(first, [pod("hi", "n1", priority=100)]) == 0
    # Its preemptor went elsewhere (another node freed first): the node is anyone's.
    assert await wasted(first, [pod("hi", "n2", priority=100), pod("other", "n1", priority=100)]) == 0
    assert await wasted(first, [pod("hi", priority=100, said=True), pod("top", "n1", priority=500)]) == 0
    # Its preemptor deleted meanwhile: the node is anyone's.
    assert await wasted(first, [pod("other", "n1", priority=100)]) == 0


async def test_the_longest_wait_of_a_reserving_gang_is_reported() -> None:
    now = [0.0]
    reserving = "gang soak/g reserves 1 of the 2 nodes it needs (for 0s)"
    kube = Pods(
        [pod("g-0", gang=("g", 2), said=True, reason=reserving), pod("g-1", gang=("g", 2), said=True)]
    )
    report = Report()
    checker = Checker(kube, report, Churn(kube, random.Random(1), report), clock=lambda: now[0])  # type: ignore[arg-type]
    await checker.check()
    now[0] = 12.0
    kube.pods = [pod("g-0", "n1", gang=("g", 2)), pod("g-1", "n2", gang=("g", 2))]
    await checker.check()
    assert (report.reserved_gangs, report.longest_reserving_s) == (1, 12.0)
