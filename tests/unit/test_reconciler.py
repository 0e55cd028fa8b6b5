"""The order and absorption of a pass's writes, on a recording fake of `Kube` (answers a real server
gives rarely, at a chosen moment: a 500 on a nomination). The real server's refusals are in
tests/e2e/test_refusals.py.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import structlog

from custom_scheduler.cache import Cache
from custom_scheduler.kube import OK, Answer, NotLeading, Outcome
from custom_scheduler.model import Pod
from custom_scheduler.reconciler import Reconciler
from custom_scheduler.settings import Settings
from tests.unit.builders import node, pod

pytestmark = pytest.mark.asyncio(loop_scope="function")


class FakeKube:
    """Records every write as (verb, pod, detail); `answers` picks an answer by (verb, pod)."""

    def __init__(self, answers: dict[tuple[str, str], Answer] | None = None) -> None:
        self.answers = answers or {}
        self.writes: list[tuple[str, str, str]] = []
        self.fence_open = True

    def server_time(self) -> float:
        return 1_000_000.0

    def _take(self, verb: str, pod: str, detail: str = "") -> Answer:
        if not self.fence_open:
            raise NotLeading(f"{verb} {pod}")
        self.writes.append((verb, pod, detail))
        return self.answers.get((verb, pod), OK)

    async def bind(self, namespace: str, name: str, node: str, body: dict[str, Any]) -> Answer:
        return self._take("bind", name, node)

    async def evict(self, namespace: str, name: str, body: dict[str, Any]) -> Answer:
        return self._take("evict", name)

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Answer:
        status = patch["status"]
        if "nominatedNodeName" in status:
            return self._take("nominate", name, str(status["nominatedNodeName"]))
        (c,) = status["conditions"]
        return self._take("condition", name, f"{c['type']}={c['status']}: {c['message']}")

    async def create_event(self, namespace: str, body: dict[str, Any]) -> Answer:
        return self._take("event", body["involvedObject"]["name"], f"{body['reason']}: {body['message']}")


def reconciler(kube: FakeKube, *items: Any) -> Reconciler:
    cache = Cache()
    cache.nodes.replace([i for i in items if not isinstance(i, Pod)])
    cache.pods.replace([i for i in items if isinstance(i, Pod)])
    return Reconciler(kube, cache, Settings())  # type: ignore[arg-type]


def verbs(kube: FakeKube, verb: str) -> list[str]:
    return [pod for v, pod, _ in kube.writes if v == verb]


async def test_nominations_are_written_before_any_eviction() -> None:
    kube = FakeKube()
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    await r.run_pass()
    order = [(v, pod) for v, pod, _ in kube.writes if v in ("nominate", "evict")]
    assert order == [("nominate", "high"), ("evict", "low")]


@pytest.mark.parametrize(
    "failed", [Answer(Outcome.FAILED, 500, "etcd leader changed"), Answer(Outcome.FAILED, 0, "TimeoutError")]
)
async def test_nobody_is_evicted_for_a_preemptor_whose_nomination_failed(failed: Answer) -> None:
    kube = FakeKube({("nominate", "high"): failed})
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    stats, plan = await r.run_pass()
    assert [e.pod for e in plan.evictions] == ["default/low"]
    assert verbs(kube, "evict") == [] and stats.outcomes["eviction_not_nominated"] == 1
    assert not [w for w in kube.writes if w[0] == "condition" and w[2].startswith("DisruptionTarget")]
    kube.answers.clear()  # the next pass writes the nomination, then evicts
    await r.run_pass()
    assert verbs(kube, "nominate") == ["high", "high"] and verbs(kube, "evict") == ["low"]


async def test_a_gang_evicts_only_once_every_member_holds_its_nomination() -> None:
    kube = FakeKube({("nominate", "g-1"): Answer(Outcome.FAILED, 503, "unavailable")})
    gang = [pod(f"g-{i}", priority=10, gang="g", min_available=2) for i in range(2)]
    r = reconciler(
        kube,
        node("n1"),
        node("n2"),
        pod("low-1", on="n1", priority=1),
        pod("low-2", on="n2", priority=1),
        *gang,
    )
    _, plan = await r.run_pass()
    assert {e.pod for e in plan.evictions} == {"default/low-1", "default/low-2"}
    assert sorted(verbs(kube, "nominate")) == ["g-0", "g-1"]
    assert verbs(kube, "evict") == [], "one member's nomination failed: no victim goes for any"


async def test_a_pass_that_loses_the_lease_stops_writing_at_once() -> None:
    kube = FakeKube()
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    kube.fence_open = False
    with pytest.raises(BaseExceptionGroup) as raised:
        await r.run_pass()
    assert raised.group_contains(NotLeading)
    assert kube.writes == []


async def test_a_refused_eviction_leaves_no_mark_and_tells_the_preemptor_once() -> None:
    message = (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    )
    kube = FakeKube({("evict", "low"): Answer(Outcome.FAILED, 500, message)})
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    async with anyio.create_task_group() as tg:
        tg.start_soon(r.recorder.run)
        for _ in range(3):
            await r.run_pass()
        while r.recorder.queued:  # noqa: ASYNC110 - the fake has no event to wait on
            await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    marks = [d for v, pod, d in kube.writes if v == "condition" and pod == "low"]
    assert marks == [], "a pod that stays is never marked as going"
    told = [d for v, pod, d in kube.writes if pod == "high" and message in d]
    assert [d.split(":")[0] for d in told] == ["PodScheduled=False", "FailedScheduling"], told


async def test_the_loop_stays_free_while_a_pass_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lease renewals run on the event loop: a long plan must not hold it.
    import custom_scheduler.reconciler as module
    from custom_scheduler.planner import plan as real

    def slow_plan(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # a plan of a large cluster: CPU the loop must not wait for
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "plan", slow_plan)
    r = reconciler(FakeKube(), node("n1"), pod("a"))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await r.run_pass()
        tg.cancel_scope.cancel()
    assert len(ticks) >= 10, "the loop ran other tasks while the pass planned"


async def test_an_eviction_that_failed_is_tried_again_after_a_growing_delay() -> None:
    message = (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    )
    kube = FakeKube({("evict", "low"): Answer(Outcome.FAILED, 500, message)})
    clock = [100.0]
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    r.clock = lambda: clock[0]
    for step in (0.0, 0.5, 0.6, 1.9):  # at 100, 100.5 (held), 101.1 (tried: 1 s passed), 103 (held: 2 s)
        clock[0] += step
        await r.run_pass()
    assert verbs(kube, "evict") == ["low", "low"]


async def test_an_accepted_eviction_is_marked_as_preemption() -> None:
    kube = FakeKube()
    r = reconciler(kube, node("n1"), pod("low", on="n1", priority=1), pod("high", priority=10))
    await r.run_pass()
    assert [(v, d) for v, pod, d in kube.writes if pod == "low"] == [
        ("evict", ""),
        ("condition", "DisruptionTarget=True: custom-scheduler: preempting to make room for default/high"),
    ]


async def test_a_pass_is_logged_at_info_only_when_it_wrote_something() -> None:
    kube = FakeKube()
    r = reconciler(kube, node("n1"), pod("a"), pod("b", t=1))
    structlog.reset_defaults()  # every level, whatever an earlier test configured
    with structlog.testing.capture_logs() as logs:
        await r.run_pass()  # binds a; b waits
        await r.run_pass()  # nothing new: b waits as it did
        await r.run_pass()
    passes = [(e["log_level"], e["binds"]) for e in logs if e["event"] == "pass_finished"]
    assert passes == [("info", 1), ("debug", 0), ("debug", 0)]
