"""Fixtures of the end-to-end tests: one real control plane per session, a namespace and nodes per test.

Without the built control plane the tests are skipped with one line that says how to get them,
except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Protocol

import pytest
import pytest_asyncio

from custom_scheduler.kube import connect
from tests.e2e.cluster import Cluster, unique
from tests.harness.controlplane import ControlPlane, ControlPlaneError, missing_binaries

CI = os.environ.get("CI") == "true"
TEST_LABEL = "custom-scheduler.dev/test"


class NodeFactory(Protocol):
    """`names, (key, value) = await nodes(2, labels=..., taints=..., allocatable=...)`: Ready KWOK
    nodes carrying this test's own label (and any others asked for)."""

    def __call__(
        self,
        count: int,
        *,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
    ) -> Awaitable[tuple[list[str], tuple[str, str]]]: ...


_not_built: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the end-to-end tests; without the built control plane (and not in CI), leave them out."""
    e2e = [item for item in items if "tests/e2e/" in str(item.path)]
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
    if e2e and not CI and (missing := missing_binaries()):
        _not_built.append(
            f"{len(e2e)} end-to-end tests skipped: the local control plane is not built "
            f"({', '.join(missing)}); `make controlplane` builds it once (about 6 minutes)"
        )
        config.hook.pytest_deselected(items=e2e)
        items[:] = [item for item in items if item not in e2e]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The one line that says why end-to-end tests did not run, and how to get them."""
    for line in _not_built:
        terminalreporter.write_line(line, yellow=True)


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true needs the local control plane: {reason}", pytrace=False)
    pytest.skip(f"end-to-end tests need the local control plane: {reason}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager and KWOK, for the whole session."""
    missing = missing_binaries()
    if missing:
        _unavailable(f"{', '.join(missing)} not built; run `make controlplane` (once; it is cached)")
    # A run stopped with SIGTERM tears down like one stopped with Ctrl-C: no process left behind.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    plane = ControlPlane()
    try:
        plane.start()
    except ControlPlaneError as error:
        _unavailable(str(error))
    try:
        yield plane
    finally:
        plane.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest_asyncio.fixture(scope="session")
async def cluster(control_plane: ControlPlane) -> AsyncIterator[Cluster]:
    """The admin's view of the control plane."""
    async with connect(str(control_plane.kubeconfig), None) as kube:
        yield Cluster(kube)


@pytest_asyncio.fixture
async def namespace(cluster: Cluster) -> AsyncIterator[str]:
    """A namespace of this test's own, deleted after it."""
    name = unique("t")
    await cluster.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    await cluster.delete(f"/api/v1/namespaces/{name}")


@pytest_asyncio.fixture
async def nodes(cluster: Cluster) -> AsyncIterator[NodeFactory]:
    """Make N Ready KWOK nodes with a label unique to this test: `names, (key, value) = await nodes(2)`."""
    made: list[str] = []
    label = (TEST_LABEL, unique("n"))

    async def make(
        count: int,
        *,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        allocatable: dict[str, str] | None = None,
    ) -> tuple[list[str], tuple[str, str]]:
        names = await cluster.create_nodes(
            count,
            labels={label[0]: label[1], **(labels or {})},
            prefix=f"{label[1]}-{len(made)}",
            taints=taints,
            allocatable=allocatable,
        )
        made.extend(names)
        return names, label

    yield make
    for name in made:
        await cluster.delete(f"/api/v1/nodes/{name}")
