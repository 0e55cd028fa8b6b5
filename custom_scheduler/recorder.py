"""What the scheduler tells people, written in the background so that a pass never waits for it.

Events and the reasons pods wait change nothing the next pass reads; the writes that do (binds,
evictions, nominations) belong to the pass. So, as kube-scheduler's event broadcaster and its
asynchronous status updates do, the reconciler hands them over and goes on:

- `Recorder`: events (`Scheduled`, `Preempted`, ...) in a bounded queue that a few workers post,
  in order. When the queue is full the reconciler waits for room: nothing is dropped and memory
  stays bounded.
- `Reasons`: for each waiting pod, its `PodScheduled=False` condition and a `FailedScheduling`
  event. Only the newest reason of a pod is kept, each is written once, and a pass that is about
  to bind or nominate a pod first waits for any write of its reason under way (`settle`), so an
  old reason never lands on a pod after its bind. A cluster with 45,000 waiting pods thus costs a
  pass nothing but the plan.

Both run while this replica leads. When a term ends, what they still hold is dropped, and the log
says how much: a later term must not post an old term's events or reasons. A write refused for one
pod (an admission webhook that refuses events in one namespace, say) is that pod's problem: it is
logged once, and the scheduler goes on for everyone else.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from custom_scheduler import convert
from custom_scheduler.kube import Kube, Outcome
from custom_scheduler.model import Pod, Unschedulable
from custom_scheduler.settings import DEFAULT_SCHEDULER_NAME
from custom_scheduler.telemetry import Once

log = structlog.get_logger(component="recorder")

# Events queued at most: a burst of 5,000 binds fits, some 2 MB (an entry is a tuple of the
# pod, already cached, and three short strings); beyond it, binds wait for events to go.
CAPACITY = 10_000

_Entry = tuple[Pod, str, str, str, str]  # pod, type, reason, message, timestamp


def now() -> str:
    """The API's timestamp format, to the second, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _run_workers(
    count: int, work: Callable[[], Coroutine[Any, Any, None]], *, drop: Callable[[], int], what: str
) -> None:
    """`count` tasks running `work` until cancelled; then `drop` what is left undone, and say how much."""
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(work)
    finally:
        if left := drop():
            log.warning(f"{what}_unsent", count=left)


class Recorder:
    """A bounded queue of events and the workers that post them (`run`)."""

    def __init__(
        self,
        kube: Kube | None,
        *,
        workers: int = 4,
        capacity: int = CAPACITY,
        component: str = DEFAULT_SCHEDULER_NAME,
    ) -> None:
        self.kube = kube
        self.workers = workers
        # Who reports the events (`kubectl describe pod`'s From): the scheduler's own name, as
        # kube-scheduler reports each profile's events under its schedulerName.
        self.component = component
        self.instance = socket.gethostname()
        self._send, self._receive = anyio.create_memory_object_stream[_Entry](capacity)
        self._refused = Once()

    @property
    def queued(self) -> int:
        """Events waiting to be posted."""
        return self._send.statistics().current_buffer_used

    async def record(self, pod: Pod, *, type_: str, reason: str, message: str) -> None:
        """Queue an event about `pod` (stamped now); waits only while the queue is full."""
        await self._send.send((pod, type_, reason, message, now()))

    async def post(self, pod: Pod, *, type_: str, reason: str, message: str) -> None:
        """Post an event about `pod` now, past the queue (for callers already in the background)."""
        await self._post((pod, type_, reason, message, now()))

    async def run(self) -> None:
        """Post queued events until cancelled (the term ends); then drop those still queued."""
        await _run_workers(self.workers, self._work, drop=self._drop, what="events")

    def _drop(self) -> int:
        dropped = 0
        while True:
            try:
                self._receive.receive_nowait()
            except anyio.WouldBlock:
                return dropped
            dropped += 1

    async def _work(self) -> None:
        async for entry in self._receive:
            await self._post(entry)

    async def _post(self, entry: _Entry) -> None:
        assert self.kube is not None
        pod, type_, reason, message, timestamp = entry
        body = convert.event_body(
            namespace=pod.namespace,
            pod_name=pod.name,
            pod_uid=pod.uid,
            type_=type_,
            reason=reason,
            message=message,
            timestamp=timestamp,
            instance=self.instance,
            component=self.component,
        )
        answer = await self.kube.create_event(pod.namespace, body)
        # Absorbed, each for its reason: an event is not retried (what it told is in the log too).
        if answer.outcome is Outcome.FAILED:  # the API server away for a moment: this event is lost
            log.warning("event_failed", pod=pod.key, reason=reason, error=answer.message)
        elif answer.outcome is Outcome.NOT_FOUND:  # its namespace is going
            log.debug("event_skipped", pod=pod.key, reason=reason, outcome=answer.outcome.value)
        elif not answer.ok and self._refused.first((pod.namespace, reason, answer.message)):
            # Refused in this namespace (a webhook, a policy, a quota): said once, not per event.
            log.warning(
                "event_refused",
                pod=pod.key,
                reason=reason,
                outcome=answer.outcome.value,
                error=answer.message,
            )


class Reasons:
    """Why each waiting pod waits, written in the background: newest reason only, each once."""

    def __init__(self, kube: Kube | None, recorder: Recorder, *, workers: int = 4) -> None:
        self.kube = kube
        self.recorder = recorder
        self.workers = workers
        self._said: dict[str, str] = {}  # pod -> the message its condition shows, as far as we know
        self._queue: dict[str, tuple[Pod, Unschedulable]] = {}  # oldest first; one entry a pod
        self._writing: dict[str, anyio.Event] = {}
        self._wake = anyio.Event()
        self._refused = Once()

    @property
    def queued(self) -> int:
        """Reasons waiting to be written."""
        return len(self._queue)

    def said(self, pod: str) -> str | None:
        """The message this pod's condition shows, as far as this scheduler knows."""
        return self._said.get(pod)

    def mark(self, pod: str, message: str) -> None:
        """The pod's condition now shows `message` (a nomination wrote it)."""
        self._said[pod] = message

    def keep(self, *, unschedulable: set[str], waiting: set[str]) -> None:
        """At a pass's start: drop queued reasons of pods no longer unschedulable, and forget what
        was said to pods no longer waiting (placed or gone), so that a reason is said again if
        they wait again."""
        self._queue = {k: v for k, v in self._queue.items() if k in unschedulable}
        self._said = {k: v for k, v in self._said.items() if k in waiting}

    def report(self, u: Unschedulable, pod: Pod) -> None:
        """Have `u.reason` written for the pod, unless it says so already."""
        self._queue.pop(u.pod, None)
        if self._said.get(u.pod) == u.reason or (
            pod.scheduled_reason == "Unschedulable" and pod.scheduled_message == u.reason
        ):
            self._said[u.pod] = u.reason
            return
        self._queue[u.pod] = (pod, u)
        self._wake.set()

    async def settle(self, pod: str) -> None:
        """Before the pass binds or nominates `pod`: no reason of it will be written after this."""
        self._queue.pop(pod, None)
        writing = self._writing.get(pod)
        if writing is not None:
            await writing.wait()

    async def run(self) -> None:
        """Write queued reasons until cancelled.

        Runs while this replica leads. When the term ends, what it queued is stale and what it
        said may be overwritten by the next leader: both are forgotten, so that a later term
        reports afresh.
        """
        try:
            await _run_workers(self.workers, self._work, drop=self._drop, what="reasons")
        finally:
            self._said.clear()

    def _drop(self) -> int:
        dropped = len(self._queue)
        self._queue.clear()
        return dropped

    async def _work(self) -> None:
        while True:
            # The oldest pod whose reason no other worker is writing (a pod's writes stay in order).
            key = next((k for k in self._queue if k not in self._writing), None)
            if key is None:
                if self._wake.is_set():
                    self._wake = anyio.Event()
                await self._wake.wait()
                continue
            pod, u = self._queue.pop(key)
            done = self._writing[key] = anyio.Event()
            try:
                if self._said.get(key) != u.reason:  # a write that just ended may have said it
                    await self._write(pod, u)
            finally:
                del self._writing[key]
                done.set()
                self._wake.set()  # a pod held back behind this write may go now

    async def _write(self, pod: Pod, u: Unschedulable) -> None:
        assert self.kube is not None
        patch = convert.pod_condition_patch("PodScheduled", "False", "Unschedulable", u.reason, now())
        answer = await self.kube.patch_status(pod.namespace, pod.name, patch)
        if answer.outcome in (Outcome.FAILED, Outcome.TOO_MANY):
            # Not written, not said: the next pass reports it again.
            log.warning("reason_failed", pod=u.pod, error=answer.message)
            return
        if answer.outcome in (Outcome.NOT_FOUND, Outcome.CONFLICT):  # the pod is gone, or its namespace
            log.debug("reason_skipped", pod=u.pod, outcome=answer.outcome.value)
            return
        if not answer.ok:
            # Refused for this pod (an admission policy on pods/status, say): counted as said, so
            # that it is tried again when the reason changes (or in a later term), not every pass.
            self._said[u.pod] = u.reason
            if self._refused.first((u.pod, answer.message)):
                log.warning("reason_refused", pod=u.pod, outcome=answer.outcome.value, error=answer.message)
            return
        self._said[u.pod] = u.reason
        log.info("pod_unschedulable", pod=u.pod, reason=u.reason, invalid=u.invalid)
        await self.recorder.post(pod, type_="Warning", reason="FailedScheduling", message=u.reason)
