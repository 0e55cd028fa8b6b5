"""Events and reasons in the background: each reason once, the newest only, never after a bind."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest
import structlog

from custom_scheduler.kube import OK, Answer, ApiError, Outcome
from custom_scheduler.model import Unschedulable
from custom_scheduler.recorder import Reasons, Recorder
from tests.unit import builders

fake_time = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.looptime]


class RecordingKube:
    """Takes status patches and events, each after `delay` seconds (fake time); records them."""

    def __init__(self, delay: float = 1.0, fail: BaseException | Answer | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.writes: list[tuple[str, str, str]] = []  # (what, pod, message)
        self.in_flight = 0
        self.most_in_flight = 0

    async def _take(self, what: str, pod: str, message: str) -> Answer:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay)
            if isinstance(self.fail, Answer):
                return self.fail
            if self.fail is not None:
                raise self.fail
            self.writes.append((what, pod, message))
            return OK
        finally:
            self.in_flight -= 1

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Answer:
        condition = patch["status"]["conditions"][0]
        return await self._take("condition", f"{namespace}/{name}", condition["message"])

    async def create_event(self, namespace: str, body: dict[str, Any]) -> Answer:
        pod = f"{namespace}/{body['involvedObject']['name']}"
        return await self._take(f"event {body['reason']}", pod, body["message"])


def reasons_for(kube: RecordingKube, workers: int = 2) -> Reasons:
    return Reasons(kube, Recorder(kube), workers=workers)  # type: ignore[arg-type]


async def until(condition: Any, deadline: float = 100.0) -> None:
    with anyio.fail_after(deadline):
        while not condition():  # noqa: ASYNC110 - fake time: the fakes below have no events to wait on
            await anyio.sleep(0.1)


@fake_time[0]
@fake_time[1]
async def test_a_reason_is_written_once_with_its_event() -> None:
    kube = RecordingKube()
    reasons = reasons_for(kube)
    pod = builders.pod("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(pod.key, "no node"), pod)
        await until(lambda: len(kube.writes) == 2)
        reasons.report(Unschedulable(pod.key, "no node"), pod)  # the next pass, same reason
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert kube.writes == [
        ("condition", "default/a", "no node"),
        ("event FailedScheduling", "default/a", "no node"),
    ]


@fake_time[0]
@fake_time[1]
async def test_a_reason_the_pod_already_shows_is_not_written() -> None:
    kube = RecordingKube()
    reasons = reasons_for(kube)
    pod = dataclasses.replace(
        builders.pod("a"), scheduled_reason="Unschedulable", scheduled_message="no node"
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(pod.key, "no node"), pod)
        await anyio.sleep(10)
        assert reasons.said(pod.key) == "no node"
        tg.cancel_scope.cancel()
    assert kube.writes == []


@fake_time[0]
@fake_time[1]
async def test_only_the_newest_reason_of_a_pod_waiting_in_the_queue_is_written() -> None:
    kube = RecordingKube()
    reasons = reasons_for(kube, workers=1)
    busy, pod = builders.pod("busy"), builders.pod("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(busy.key, "first in line"), busy)
        await anyio.sleep(0.5)  # the one worker is writing busy's reason
        reasons.report(Unschedulable(pod.key, "old"), pod)
        reasons.report(Unschedulable(pod.key, "new"), pod)
        await until(lambda: len(kube.writes) == 4)
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert [w for w in kube.writes if w[1] == "default/a"] == [
        ("condition", "default/a", "new"),
        ("event FailedScheduling", "default/a", "new"),
    ]


@fake_time[0]
@fake_time[1]
async def test_settle_waits_for_a_reason_being_written_and_drops_a_queued_one() -> None:
    kube = RecordingKube(delay=5.0)
    reasons = reasons_for(kube, workers=1)
    writing, queued = builders.pod("writing"), builders.pod("queued")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(writing.key, "no node"), writing)
        reasons.report(Unschedulable(queued.key, "no node"), queued)
        await anyio.sleep(1)  # the condition of `writing` is on its way
        await reasons.settle(queued.key)  # not begun: dropped at once
        await reasons.settle(writing.key)
        # A bind may go now: the condition it would overwrite (and its event) have landed.
        assert kube.writes == [
            ("condition", "default/writing", "no node"),
            ("event FailedScheduling", "default/writing", "no node"),
        ]
        await anyio.sleep(30)
        tg.cancel_scope.cancel()
    assert [w[1] for w in kube.writes] == ["default/writing", "default/writing"]


@fake_time[0]
@fake_time[1]
async def test_keep_forgets_pods_no_longer_waiting_so_they_are_told_again() -> None:
    kube = RecordingKube()
    reasons = reasons_for(kube)
    pod, gone = builders.pod("a"), builders.pod("gone")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(pod.key, "no node"), pod)
        await until(lambda: len(kube.writes) == 2)
        reasons.keep(unschedulable=set(), waiting=set())  # a pass placed it
        reasons.report(Unschedulable(gone.key, "no node"), gone)
        reasons.keep(unschedulable=set(), waiting=set())  # ...and `gone` was deleted before its write
        reasons.report(Unschedulable(pod.key, "no node"), pod)  # waiting again (evicted, say)
        await until(lambda: len(kube.writes) == 4)
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert [w[1] for w in kube.writes] == ["default/a"] * 4


@fake_time[0]
@fake_time[1]
async def test_a_term_that_ends_forgets_what_it_queued_and_said() -> None:
    kube = RecordingKube()
    reasons = reasons_for(kube, workers=1)
    told, busy, queued = builders.pod("told"), builders.pod("busy"), builders.pod("queued")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(told.key, "no node"), told)
        await until(lambda: len(kube.writes) == 2)
        reasons.report(Unschedulable(busy.key, "no node"), busy)
        reasons.report(Unschedulable(queued.key, "no node"), queued)
        await anyio.sleep(0.5)  # busy's condition in flight, queued's waiting
        tg.cancel_scope.cancel()  # leadership lost
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)  # leading again; another leader may have written in between
        await anyio.sleep(10)
        assert reasons.said(told.key) is None  # so the next pass tells it again
        reasons.report(Unschedulable(told.key, "no node"), told)
        await until(lambda: len(kube.writes) == 4)
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert [w[1] for w in kube.writes] == ["default/told"] * 4  # nothing of the old term's queue


@fake_time[0]
@fake_time[1]
async def test_a_failed_write_is_not_counted_as_said() -> None:
    kube = RecordingKube(fail=Answer(Outcome.FAILED, 0, "ServerDisconnectedError: Server disconnected"))
    reasons = reasons_for(kube)
    pod = builders.pod("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(reasons.run)
        reasons.report(Unschedulable(pod.key, "no node"), pod)
        await anyio.sleep(10)
        assert reasons.said(pod.key) is None  # the next pass reports it again
        tg.cancel_scope.cancel()
    assert kube.writes == []


@fake_time[0]
@fake_time[1]
async def test_an_unexpected_answer_ends_the_workers() -> None:
    kube = RecordingKube(fail=ApiError("PATCH", "/api/v1/namespaces/default/pods/a/status", 403, "forbidden"))
    reasons = reasons_for(kube)
    pod = builders.pod("a")
    with pytest.raises(BaseExceptionGroup) as raised:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reasons.run)
            reasons.report(Unschedulable(pod.key, "no node"), pod)
            await anyio.sleep(100)
    assert raised.group_contains(ApiError)


@fake_time[0]
@fake_time[1]
async def test_events_are_posted_in_order_a_few_at_a_time_and_the_queue_is_bounded() -> None:
    kube = RecordingKube()
    recorder = Recorder(kube, workers=2, capacity=3)  # type: ignore[arg-type]
    pods = [builders.pod(f"p{i}") for i in range(8)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        started = anyio.current_time()
        for pod in pods:
            await recorder.record(pod, type_="Normal", reason="Scheduled", message=pod.name)
        # Room for 3 queued and 2 in flight: the sixth record() waited for the first posts.
        assert anyio.current_time() - started >= 1.0
        await until(lambda: len(kube.writes) == 8)
        tg.cancel_scope.cancel()
    assert [w[2] for w in kube.writes] == [p.name for p in pods]
    assert kube.most_in_flight == 2


@fake_time[0]
@fake_time[1]
async def test_events_still_queued_when_a_term_ends_are_dropped_not_posted_by_a_later_term() -> None:
    kube = RecordingKube(delay=5.0)
    recorder = Recorder(kube, workers=1)  # type: ignore[arg-type]
    pods = [builders.pod(f"p{i}") for i in range(4)]
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            for pod in pods:
                await recorder.record(pod, type_="Normal", reason="Scheduled", message=pod.name)
            await anyio.sleep(1)  # p0's event in flight, three queued
            tg.cancel_scope.cancel()  # leadership lost
    assert recorder.queued == 0
    assert [e["count"] for e in logs if e["event"] == "events_unsent"] == [3]
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)  # a later term
        later = builders.pod("later")
        await recorder.record(later, type_="Normal", reason="Scheduled", message="later")
        await until(lambda: len(kube.writes) == 1)
        await anyio.sleep(30)
        tg.cancel_scope.cancel()
    assert [w[2] for w in kube.writes] == ["later"], "nothing of the old term's queue"


@fake_time[0]
@fake_time[1]
async def test_a_refused_event_or_reason_is_that_pods_problem_logged_once() -> None:
    refusal = Answer(Outcome.REFUSED, 400, 'admission webhook "no-events" denied the request')
    kube = RecordingKube(fail=refusal)
    reasons = reasons_for(kube)
    pods = [builders.pod(f"p{i}") for i in range(3)]
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reasons.recorder.run)
            tg.start_soon(reasons.run)
            for _ in range(3):  # three passes
                for pod in pods:
                    reasons.report(Unschedulable(pod.key, "no node"), pod)
                    await reasons.recorder.record(pod, type_="Normal", reason="Scheduled", message="x")
                await anyio.sleep(10)
            tg.cancel_scope.cancel()
    refused = [e for e in logs if e["event"] in ("reason_refused", "event_refused")]
    # Each pod's reason once (it is not tried again every pass), the namespace's events once.
    assert sorted(e["event"] for e in refused) == ["event_refused"] + ["reason_refused"] * 3
    assert all(e["error"] == refusal.message for e in refused)
