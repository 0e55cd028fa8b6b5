"""Leader election on a scripted Lease API, in fake time: when this replica may write, and the flags."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

from custom_scheduler.__main__ import UsageError, build_parser, settings_from_args
from custom_scheduler.leader import Elector, LeaseConfig

fake_time = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.looptime]


class LeaseStore:
    """One Lease, kept as the API server would (resourceVersion as a precondition); each answer
    comes after `delay` seconds."""

    def __init__(self, delay: float = 0.1) -> None:
        self.delay = delay
        self.lease: dict[str, Any] | None = None
        self.version = 0

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        await anyio.sleep(self.delay)
        return copy.deepcopy(self.lease)

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        await anyio.sleep(self.delay)
        if self.lease is not None:
            return False
        self._store(body)
        return True

    async def update_lease(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        await anyio.sleep(self.delay)
        if self.lease is None or body["metadata"].get("resourceVersion") != str(self.version):
            return False
        self._store(body)
        return True

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)


def elector(store: LeaseStore, identity: str = "a") -> Elector:
    config = LeaseConfig(name="l", namespace="ns", identity=identity)
    return Elector(store, config, clock=anyio.current_time)  # type: ignore[arg-type]


@fake_time[0]
@fake_time[1]
async def test_validity_counts_from_when_the_renewal_was_sent() -> None:
    store = LeaseStore()
    e = elector(store)
    assert await e.try_acquire_or_renew()
    e.leading = True
    store.delay = 3.0  # a slow answer: the renewal is seen by others from when it was sent
    sent = anyio.current_time() + 3.0  # after the GET's 3 s, the PUT leaves
    assert await e.try_acquire_or_renew()
    assert e.valid_until == pytest.approx(sent + e.config.renew_deadline)
    await anyio.sleep(e.valid_until - anyio.current_time() - 0.01)
    assert e.lease_valid()
    await anyio.sleep(0.02)
    assert not e.lease_valid(), "past the renew deadline since the renewal was sent"


@fake_time[0]
@fake_time[1]
async def test_a_leader_that_sees_another_holder_stops_writing_at_once() -> None:
    store = LeaseStore()
    a, b = elector(store, "a"), elector(store, "b")
    assert await a.try_acquire_or_renew()
    a.leading = True
    assert a.lease_valid()
    # b takes over once a's record has stood still for the lease duration (a froze, say).
    assert not await b.try_acquire_or_renew()
    await anyio.sleep(a.config.lease_duration + 1)
    assert await b.try_acquire_or_renew()
    assert not a.lease_valid(), "a's own deadline has passed too"
    a.valid_until = anyio.current_time() + 5  # even were a's clock to say otherwise
    assert not await a.try_acquire_or_renew()
    assert a.deposed and not a.lease_valid()


@pytest.mark.parametrize(
    "flags",
    [
        ["--leader-elect-lease-duration=10", "--leader-elect-renew-deadline=10"],
        ["--leader-elect-renew-deadline=2", "--leader-elect-retry-period=2"],
        ["--leader-elect-retry-period=0"],
    ],
)
def test_leader_election_timing_must_leave_margins(flags: list[str]) -> None:
    with pytest.raises(UsageError, match="leader election needs"):
        settings_from_args(build_parser().parse_args(["run", *flags]))


def test_leader_election_timing_defaults_to_kube_schedulers() -> None:
    settings = settings_from_args(build_parser().parse_args(["run"]))
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15.0, 10.0, 2.0)
    custom = ["run", "--leader-elect-lease-duration=6", "--leader-elect-renew-deadline=4"]
    settings = settings_from_args(build_parser().parse_args([*custom, "--leader-elect-retry-period=1"]))
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (6.0, 4.0, 1.0)
