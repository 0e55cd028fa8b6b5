"""When passes run: every interval, and soon after a relevant change, debounced, one at a time.

Informers `kick` the trigger. The loop waits for a kick or the interval; after a kick it waits
the debounce delay so that a burst of changes gives one pass. Kicks that arrive while a pass
runs leave the trigger set, which gives exactly one more pass after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


class Trigger:
    """Set by informers when something relevant changed; the loop waits for it or the interval."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.kicks = 0  # relevant changes so far: a pass can tell whether any came since the last

    def kick(self) -> None:
        """Ask for a pass soon."""
        self.kicks += 1
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait for a kick, at most `seconds`; True when kicked."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
            return True
        return False

    def clear(self) -> None:
        """A pass starts now: kicks from here on ask for the next one."""
        self._event = anyio.Event()


async def run_passes(
    run_pass: Callable[[], Awaitable[object]],
    trigger: Trigger,
    *,
    interval: float,
    debounce: float,
    synced: Callable[[], Awaitable[None]],
) -> None:
    """Forever: once `synced` returns, a pass after every kick (debounced) or every interval."""
    await synced()
    while True:
        if await trigger.wait(interval) and debounce > 0:
            await anyio.sleep(debounce)
        trigger.clear()
        await run_pass()
