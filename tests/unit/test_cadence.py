"""Cadence on fake loop time (looptime): interval, debounce, and exactly one more pass after a change."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from custom_scheduler.cadence import Trigger, run_passes

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.looptime]


class Recorder:
    """A pass that takes `duration` seconds and records when it started."""

    def __init__(self, duration: float = 0.0) -> None:
        self.duration = duration
        self.started: list[float] = []

    async def __call__(self) -> None:
        self.started.append(asyncio.get_running_loop().time())
        await anyio.sleep(self.duration)


async def _nothing() -> None:
    return None


async def test_without_changes_a_pass_runs_every_interval() -> None:
    passes = Recorder()
    with anyio.move_on_after(16):
        await run_passes(passes, Trigger(), interval=5, debounce=0.1, synced=_nothing)
    assert passes.started == [5, 10, 15]


async def test_a_burst_of_changes_gives_one_pass_after_the_debounce() -> None:
    passes, trigger = Recorder(), Trigger()

    async def burst() -> None:
        await anyio.sleep(1)
        for _ in range(50):
            trigger.kick()
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(burst)
        with anyio.move_on_after(4):
            await run_passes(passes, trigger, interval=5, debounce=0.1, synced=_nothing)
    assert len(passes.started) == 1
    assert 1.0 < passes.started[0] < 1.2


async def test_changes_during_a_pass_give_exactly_one_more_pass() -> None:
    passes, trigger = Recorder(duration=2), Trigger()

    async def changes() -> None:
        trigger.kick()  # starts the first pass at about 0.1
        await anyio.sleep(0.5)
        for _ in range(10):  # all during the first pass
            trigger.kick()
            await anyio.sleep(0.1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(changes)
        with anyio.move_on_after(4.5):
            await run_passes(passes, trigger, interval=30, debounce=0.1, synced=_nothing)
    assert len(passes.started) == 2
    # The second starts right after the first ends (2.1) plus the debounce, not at the interval.
    assert passes.started[1] == pytest.approx(2.2, abs=0.05)


async def test_no_pass_before_the_caches_are_synced() -> None:
    passes, trigger = Recorder(), Trigger()
    synced = anyio.Event()

    async def sync_later() -> None:
        trigger.kick()
        await anyio.sleep(3)
        synced.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sync_later)
        with anyio.move_on_after(3.5):
            await run_passes(passes, trigger, interval=5, debounce=0.1, synced=synced.wait)
    assert len(passes.started) == 1
    assert passes.started[0] == pytest.approx(3.1, abs=0.05)
