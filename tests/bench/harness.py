"""The benchmarks' harness: a fresh control plane per run, its nodes, a watch, and the contender's process.

`bench_cluster()` starts kube-apiserver, etcd, the controller manager and KWOK, makes the nodes
(and waits until KWOK has made every one Ready) and watches the benchmark's namespace; the
workload then starts the contender with `Bench.start()`, which returns once the scheduler says it
is ready (its /readyz), so no workload begins before the scheduler's caches are warm. Times are
arrival times on the harness's own watch, so every contender is measured by the same clock.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from custom_scheduler.kube import Kind, Kube, connect
from tests.harness.controlplane import ControlPlane, Process, bin_dir, free_port, kwok_node

NS = "bench"
CREATE_CONCURRENCY = 100
OURS = "custom-scheduler"
KUBE_SCHEDULER = "kube-scheduler"
KUBE_SCHEDULER_RAISED = "kube-scheduler (QPS 5000)"
CEILING = "ceiling"
CONTENDERS = (OURS, KUBE_SCHEDULER, KUBE_SCHEDULER_RAISED, CEILING)
# The scheduler name each contender's pods ask for (the ceiling's pods are bound by the harness).
SCHEDULER_NAME = {
    OURS: "custom-scheduler",
    KUBE_SCHEDULER: "default-scheduler",
    KUBE_SCHEDULER_RAISED: "default-scheduler",
    CEILING: "nobody",
}
# kube-scheduler's client rate: its default, and raised as its own performance tests raise it.
CLIENT_RATE = {KUBE_SCHEDULER: (50, 100), KUBE_SCHEDULER_RAISED: (5000, 5000)}
# The alpha gang scheduling of kube-scheduler 1.36 (KEP-4671): PodGroup objects, pods that name one.
GANG_APISERVER_ARGS = (
    "--feature-gates=GenericWorkload=true",
    "--runtime-config=scheduling.k8s.io/v1alpha2=true",
)
GANG_SCHEDULER_GATES = "GenericWorkload=true,GangScheduling=true"
CLASSES = {"bench-low": 10, "bench-high": 1_000_000}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    """Progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


class Watcher:
    """Watches the benchmark's pods; records when each was first seen, bound, running and deleted."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.created: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.waiting: dict[str, float] = {}  # first seen with PodScheduled=False
        self.synced = anyio.Event()
        self._changed = anyio.Event()

    async def run(self) -> None:
        """List, then watch, forever."""
        kind = Kind("pods", f"/api/v1/namespaces/{NS}/pods")
        items, version = await self.kube.list(kind)
        for obj in items:
            self._see("ADDED", obj)
        self.synced.set()
        while True:
            async for kind_of_event, obj in self.kube.watch(kind, version, seconds=600):
                version = obj.get("metadata", {}).get("resourceVersion") or version
                self._see(kind_of_event, obj)

    def _see(self, kind_of_event: str, obj: dict[str, Any]) -> None:
        if kind_of_event not in ("ADDED", "MODIFIED", "DELETED"):
            return
        name = obj["metadata"]["name"]
        now = time.monotonic()
        self.created.setdefault(name, now)
        if obj.get("spec", {}).get("nodeName"):
            self.bound.setdefault(name, now)
        status = obj.get("status") or {}
        if status.get("phase") == "Running":
            self.running.setdefault(name, now)
        if name not in self.waiting and any(
            c.get("type") == "PodScheduled" and c.get("status") == "False"
            for c in status.get("conditions") or []
        ):
            self.waiting[name] = now
        if kind_of_event == "DELETED":
            self.deleted.setdefault(name, now)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, done: Callable[[], bool], *, deadline: float, what: str) -> None:
        """Until `done()` holds, checked after every event; TimeoutError naming `what` after `deadline` s."""
        try:
            with anyio.fail_after(deadline):
                while not done():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what}: not done after {deadline:.0f} s") from None

    async def wait_all(
        self, seen: dict[str, float], names: Iterable[str], *, deadline: float, what: str
    ) -> None:
        """Until every name is in `seen` (one of the dicts above)."""
        names = list(names)
        await self.wait_until(lambda: all(n in seen for n in names), deadline=deadline, what=what)


# kube-scheduler's form of our rule: nodes that take one pod.
ONE_POD = {"cpu": "32", "memory": "256Gi", "pods": "1"}


def node_name(i: int) -> str:
    """The i-th node's name (names sort in creation order)."""
    return f"node-{i:05d}"


def pod_body(
    name: str,
    scheduler: str,
    *,
    priority_class: str | None = None,
    node: str | None = None,
    annotations: dict[str, str] | None = None,
    pod_group: str | None = None,
) -> dict[str, Any]:
    """A pod of the benchmark: pending for `scheduler`, or already on `node`."""
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": "pause"}],
        # New nodes carry this taint until a node lifecycle controller (not run here) lifts it;
        # our scheduler ignores taints, so kube-scheduler's pods tolerate it to compare.
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
        ],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    if node:
        spec["nodeName"] = node
    if pod_group:
        spec["schedulingGroup"] = {"podGroupName": pod_group}
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


async def run_all(calls: Iterable[Callable[[], Awaitable[Any]]], limit: int = CREATE_CONCURRENCY) -> None:
    """Run the calls, `limit` at a time."""
    todo = iter(calls)

    async def worker() -> None:
        for call in todo:
            await call()

    async with anyio.create_task_group() as tg:
        for _ in range(limit):
            tg.start_soon(worker)


async def expect(
    kube: Kube, method: str, path: str, body: object = None, *, ok: tuple[int, ...] = (200, 201)
) -> Any:
    """A request that must succeed."""
    status, data = await kube.call(method, path, body)
    if status not in ok:
        raise RuntimeError(f"{method} {path} answered {status}: {data}")
    return data


async def create_pods(kube: Kube, bodies: Iterable[dict[str, Any]]) -> None:
    """Create the pods in the benchmark's namespace, CREATE_CONCURRENCY at a time."""
    await run_all(partial(expect, kube, "POST", f"/api/v1/namespaces/{NS}/pods", body) for body in bodies)


def binding(pod: str, node: str) -> dict[str, Any]:
    """The body of a bind, as any scheduler sends it."""
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "namespace": NS},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


async def bind(kube: Kube, pod: str, node: str) -> None:
    """Bind a pod, as the ceiling does."""
    await expect(kube, "POST", f"/api/v1/namespaces/{NS}/pods/{pod}/binding", binding(pod, node))


async def count_events(kube: Kube, reason: str) -> int:
    """How many events with this reason the benchmark's namespace holds."""
    total, token = 0, ""
    while True:
        query = [("fieldSelector", f"reason={reason}"), ("limit", "5000")]
        if token:
            query.append(("continue", token))
        page = await expect(
            kube, "GET", f"/api/v1/namespaces/{NS}/events?" + "&".join(f"{k}={v}" for k, v in query)
        )
        total += len(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return total


@dataclass
class Usage:
    """CPU seconds and the peak resident memory of a process, from /proc."""

    cpu_seconds: float
    peak_rss_mb: float  # MiB, as /proc counts (kB there are KiB)

    @staticmethod
    def of(pid: int) -> Usage:
        """What the process has used so far (the peak over its whole life)."""
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
        peak = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
        return Usage(cpu, peak)


@dataclass
class Scheduler:
    """A contender's scheduler process."""

    contender: str
    process: Process  # dies with the harness, however it ends (no scheduler outlives a killed run)
    ready_url: str

    def usage(self) -> Usage:
        """CPU seconds so far and peak RSS."""
        assert self.process.popen is not None
        return Usage.of(self.process.popen.pid)

    async def wait_ready(self, deadline: float = 120.0) -> None:
        """Until its /readyz answers 200 (informers synced)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # kube-scheduler serves a self-signed certificate

        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2, context=context) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        started = time.monotonic()
        while not await anyio.to_thread.run_sync(ready):
            if not self.process.alive():
                raise RuntimeError(f"{self.contender} exited at start:\n{self.process.tail()}")
            if time.monotonic() - started > deadline:
                raise TimeoutError(f"{self.contender} not ready after {deadline:.0f} s")
            await anyio.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 30 s)."""
        self.process.stop(timeout=30)


def _start_scheduler(contender: str, plane: ControlPlane, log: Path, *, gangs: bool) -> Scheduler:
    port = free_port()
    if contender == OURS:
        argv = [
            sys.executable,
            "-m",
            "custom_scheduler",
            "run",
            f"--kubeconfig={plane.kubeconfig}",
            "--log-format=json",
            f"--health-port={port}",
        ]
        url = f"http://127.0.0.1:{port}/readyz"
    else:
        qps, burst = CLIENT_RATE[contender]
        assert plane.workdir is not None
        config = plane.workdir / "kube-scheduler.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(plane.workdir / "scheduler.kubeconfig"),
                        "qps": qps,
                        "burst": burst,
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        argv = [
            str(bin_dir() / "kube-scheduler"),
            f"--config={config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "-v=1",
        ]
        if gangs:
            argv.append(f"--feature-gates={GANG_SCHEDULER_GATES}")
        url = f"https://127.0.0.1:{port}/readyz"
    log.unlink(missing_ok=True)
    process = Process(contender, argv, log)
    process.start()
    return Scheduler(contender, process, url)


@dataclass
class Bench:
    """One run's cluster: the control plane, a client, the watch, and (once started) the scheduler."""

    contender: str
    plane: ControlPlane
    kube: Kube
    watcher: Watcher
    log: Path
    gangs: bool = False
    scheduler: Scheduler | None = None
    notes: list[str] = field(default_factory=list)

    async def start(self) -> None:
        """Start the contender's scheduler (none for the ceiling) and wait until it is ready."""
        if self.contender == CEILING:
            return
        self.scheduler = _start_scheduler(self.contender, self.plane, self.log, gangs=self.gangs)
        await self.scheduler.wait_ready()

    def usage(self) -> Usage | None:
        """The scheduler's CPU and memory so far (None for the ceiling)."""
        return self.scheduler.usage() if self.scheduler else None

    async def create_classes(self) -> None:
        """The benchmark's priority classes."""
        for name, value in CLASSES.items():
            body = {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            }
            await expect(self.kube, "POST", "/apis/scheduling.k8s.io/v1/priorityclasses", body)

    async def create_nodes(self, count: int) -> list[str]:
        """`count` nodes, all Ready before this returns."""
        allocatable = ONE_POD if self.contender in CLIENT_RATE else None
        names = [node_name(i) for i in range(count)]
        await run_all(
            partial(expect, self.kube, "POST", "/api/v1/nodes", kwok_node(n, allocatable=allocatable))
            for n in names
        )
        kind = Kind("nodes", "/api/v1/nodes")
        with anyio.fail_after(600):
            while True:
                items, _ = await self.kube.list(kind)
                ready = sum(
                    1
                    for n in items
                    for c in (n.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready" and c.get("status") == "True"
                )
                if ready >= count:
                    return names
                await anyio.sleep(0.5)  # polling the API, not waiting for an outcome blind

    async def wait_events(self, reason: str, count: int, *, deadline: float) -> float:
        """Until `count` events of `reason` exist; the monotonic time they all were there."""
        with anyio.fail_after(deadline):
            while await count_events(self.kube, reason) < count:  # noqa: ASYNC110 - polling the API
                await anyio.sleep(0.25)
        return time.monotonic()


@asynccontextmanager
async def bench_cluster(
    contender: str, nodes: int, work: Path, *, gangs: bool = False
) -> AsyncIterator[Bench]:
    """A fresh control plane with `nodes` Ready nodes and the watch running; everything stops on exit."""
    apiserver_args = list(GANG_APISERVER_ARGS) if gangs else []
    with ControlPlane(quiet=True, apiserver_args=apiserver_args) as plane:
        async with connect(str(plane.kubeconfig), None, connections=CREATE_CONCURRENCY + 40) as kube:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
            await expect(kube, "POST", "/api/v1/namespaces", namespace)
            slug = contender.replace(" ", "-").replace("(", "").replace(")", "").lower()
            bench = Bench(contender, plane, kube, Watcher(kube), work / f"{slug}.log", gangs=gangs)
            await bench.create_nodes(nodes)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bench.watcher.run)
                    await bench.watcher.synced.wait()
                    yield bench
                    tg.cancel_scope.cancel()
            finally:
                if bench.scheduler is not None:
                    bench.scheduler.stop()
