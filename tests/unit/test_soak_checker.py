"""The soak's checker sees what it is there to see (a checker that cannot fail proves nothing)."""

from __future__ import annotations

import random
from typing import Any

from tests.soak import Checker, Churn, Report


class Pods:
    """Answers the checker's one GET with crafted pods."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    async def call(self, method: str, path: str, *args: Any, **kw: Any) -> tuple[int, Any]:
        return 200, {"items": self.pods}


def pod(
    name: str, node: str = "", *, created: str = "2020-01-01T00:00:00Z", said: bool = False
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if node else "Pending"}
    if said:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "message": "why"}]
    return {
        "metadata": {"name": name, "creationTimestamp": created, "annotations": {}},
        "spec": {"schedulerName": "custom-scheduler", "nodeName": node},
        "status": status,
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
