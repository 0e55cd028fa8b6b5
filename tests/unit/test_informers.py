"""The informer loop on a scripted API: resume after a watch ends, relist on 410, back off on errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from custom_scheduler import convert
from custom_scheduler.cache import Cache
from custom_scheduler.informers import Informer, backoff
from custom_scheduler.kube import ApiError, Expired, Kind, Page

fake_time = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.looptime]

NODES = Kind("nodes", "/api/v1/nodes")


def node(name: str, rv: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": rv},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


class ScriptedKube:
    """Answers lists and watches from a script; records what was asked."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, str]] = []
        self.target = 0
        self.reached = anyio.Event()

    def _called(self, what: str, rv: str) -> None:
        self.calls.append((what, rv))
        if len(self.calls) >= self.target:
            self.reached.set()

    async def pages(self, kind: Kind) -> AsyncIterator[Page]:
        self._called("list", "")
        answer = self.lists.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, list):  # pages
            for page in answer:
                yield page
            return
        items, rv = answer
        yield Page(items, rv)

    async def watch(self, kind: Kind, rv: str, *, seconds: int) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self._called("watch", rv)
        if not self.watches:
            await anyio.sleep_forever()
        for event in self.watches.pop(0):
            if isinstance(event, BaseException):
                raise event
            yield event


async def run_until(informer: Informer[Any], kube: ScriptedKube, calls: int) -> None:
    kube.target = calls
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)
            await kube.reached.wait()
            tg.cancel_scope.cancel()


def make(kube: ScriptedKube, cache: Cache, kicks: list[int]) -> Informer[Any]:
    return Informer(kube, NODES, cache.nodes, convert.node_from_api, lambda: kicks.append(1))  # type: ignore[arg-type]


@fake_time[0]
@fake_time[1]
async def test_list_then_watch_from_its_version_then_resume_from_the_last_event() -> None:
    cache, kicks = Cache(), list[int]()
    kube = ScriptedKube(
        lists=[([node("n1", "5")], "10")],
        watches=[
            [("ADDED", node("n2", "11")), ("BOOKMARK", {"metadata": {"resourceVersion": "15"}})],
            [("MODIFIED", node("n2", "16", ready=False)), ("DELETED", node("n1", "17"))],
        ],
    )
    informer = make(kube, cache, kicks)
    await run_until(informer, kube, calls=4)
    assert kube.calls == [("list", ""), ("watch", "10"), ("watch", "15"), ("watch", "17")]
    assert set(cache.nodes.items) == {"n2"}
    assert cache.nodes.items["n2"].ready is False
    assert informer.synced.is_set()
    assert len(kicks) == 4  # synced, n2 added, n2 not ready, n1 deleted


@fake_time[0]
@fake_time[1]
async def test_expired_watch_relists() -> None:
    cache, kicks = Cache(), list[int]()
    kube = ScriptedKube(
        lists=[([node("n1", "5")], "10"), ([node("n3", "30")], "30")],
        watches=[[Expired("nodes")]],
    )
    await run_until(make(kube, cache, kicks), kube, calls=4)
    assert kube.calls == [("list", ""), ("watch", "10"), ("list", ""), ("watch", "30")]
    assert set(cache.nodes.items) == {"n3"}  # the relist is the truth: n1 is gone


@fake_time[0]
@fake_time[1]
async def test_a_broken_stream_resumes_from_the_last_version_after_a_backoff() -> None:
    cache, kicks = Cache(), list[int]()
    kube = ScriptedKube(
        lists=[([], "1")],
        watches=[
            [("ADDED", node("n1", "2")), aiohttp.ServerDisconnectedError()],
            [("ADDED", node("n2", "3"))],
        ],
    )
    started = anyio.current_time()
    await run_until(make(kube, cache, kicks), kube, calls=4)
    assert kube.calls == [("list", ""), ("watch", "1"), ("watch", "2"), ("watch", "3")]
    assert set(cache.nodes.items) == {"n1", "n2"}
    assert anyio.current_time() - started >= backoff(1) - 1e-9


@fake_time[0]
@fake_time[1]
async def test_repeated_failures_relist_after_backoffs() -> None:
    cache, kicks = Cache(), list[int]()
    refused = aiohttp.ClientConnectionError("refused")
    kube = ScriptedKube(
        lists=[([], "1"), refused, ([node("n1", "9")], "9")],
        watches=[[refused], [refused], [refused]],
    )
    started = anyio.current_time()
    await run_until(make(kube, cache, kicks), kube, calls=7)
    assert [c[0] for c in kube.calls] == ["list", "watch", "watch", "watch", "list", "list", "watch"]
    assert set(cache.nodes.items) == {"n1"}
    assert anyio.current_time() - started >= sum(backoff(n) for n in (1, 2, 3, 4)) - 1e-9


@fake_time[0]
@fake_time[1]
async def test_forbidden_is_not_retried() -> None:
    kube = ScriptedKube(lists=[ApiError("GET", "/api/v1/nodes", 403, "forbidden")], watches=[])
    with pytest.raises(ApiError):
        await make(kube, Cache(), []).run()


def test_backoff_doubles_up_to_ten_seconds() -> None:
    assert [backoff(n) for n in (1, 2, 3, 10)] == [0.2, 0.4, 0.8, 10.0]


@fake_time[0]
@fake_time[1]
async def test_a_list_taken_again_whole_drops_the_pages_before_it() -> None:
    cache, kicks = Cache(), list[int]()
    pages = [Page([node("n1", "5")], ""), Page([node("n2", "5"), node("n3", "5")], "9", restart=True)]
    kube = ScriptedKube(lists=[pages], watches=[])
    await run_until(make(kube, cache, kicks), kube, calls=2)
    assert kube.calls == [("list", ""), ("watch", "9")]
    assert set(cache.nodes.items) == {"n2", "n3"}
