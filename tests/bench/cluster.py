"""`make bench-cluster`: our scheduler beside upstream kube-scheduler, on the same local control plane.

Each workload runs, in one run on one machine, for:
- `custom-scheduler` (this project, as its own process, with its default flags);
- `kube-scheduler` at its default client rate (QPS 50, burst 100) and with the rate raised
  (QPS 5,000, burst 5,000, as its own performance tests run it), on nodes that report allocatable
  `pods: 1`, so that it enforces the same one-pod-per-node rule;
- the ceiling: the same pods bound (evicted, for the storm) by the harness itself, concurrently,
  with no planning: the most this API server on this machine allows.

Every run gets a fresh control plane. The workloads:
- throughput: N nodes, N pending pods created at once; pods/s from the first creation to the last
  bind, and creation-to-bind latency (arrival times on the harness's watch);
- idle latency: pods created one at a time into a 1,000-node cluster;
- preemption storm: every node runs a low-priority pod; as many high-priority pods arrive at once;
  time until all of them run;
- gangs: gangs of 3 (min-available 3); kube-scheduler uses its alpha gang scheduling (PodGroup
  objects, KEP-4671);
- churn: pods created and deleted at a steady rate; the scheduler's CPU seconds and peak RSS;
- cache: ours started on a cluster that holds many pending pods (50,000 on 5,000 nodes); peak RSS
  once every pod is bound or has its reason.

    python -m tests.bench.cluster --quick   # smaller sizes, one round: a few minutes, to .bench/
    python -m tests.bench.cluster           # the full sizes, three rounds: BENCHMARKS.md and its plots
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import anyio
import orjson

from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE
from tests.bench import report
from tests.bench.harness import (
    CEILING,
    CLIENT_RATE,
    CONTENDERS,
    NS,
    OURS,
    SCHEDULER_NAME,
    Bench,
    bench_cluster,
    bind,
    create_pods,
    expect,
    node_name,
    pod_body,
    run_all,
    say,
)
from tests.bench.planner import REPO, write_section

BIND_CONCURRENCY = 64  # the ceiling's binds in flight
DEADLINE = 1800.0  # seconds any one wait may take before the run fails


@dataclass
class Run:
    """One contender on one workload."""

    contender: str
    workload: str
    pods: int
    seconds: float = 0.0  # first creation to the last bind (or, where the workload says, Running)
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float | None = None  # the scheduler's, during the workload
    peak_rss_mb: float | None = None  # the scheduler's, over its life
    events_after: float | None = None  # seconds from the last bind until all its events were posted
    unplaced: int = 0  # pods deleted (churn) before they were bound

    @property
    def rate(self) -> float:
        """Pods per second."""
        return self.pods / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency at quantile q (seconds)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _finish(
    bench: Bench,
    run: Run,
    names: list[str],
    *,
    started: float,
    seen: dict[str, float],
    before: float,
    event: str | None = "Scheduled",
) -> Run:
    """Fill in a run from the watch: duration, latencies, the scheduler's usage, when its events were in."""
    watcher = bench.watcher
    last = max(seen[n] for n in names)
    run.seconds = last - started
    run.latencies = [seen[n] - watcher.created[n] for n in names]
    usage = bench.usage()
    if usage is not None:
        run.cpu_seconds, run.peak_rss_mb = usage.cpu_seconds - before, usage.peak_rss_mb
        if event is not None:
            run.events_after = await bench.wait_events(event, len(names), deadline=DEADLINE) - last
    return run


def _cpu(bench: Bench) -> float:
    usage = bench.usage()
    return usage.cpu_seconds if usage else 0.0


async def throughput(contender: str, nodes: int, work: Path) -> Run:
    """N nodes, N pods created at once: time from the first creation to the last bind."""
    run = Run(contender, f"throughput {nodes:,}", nodes)
    async with bench_cluster(contender, nodes, work) as bench:
        await bench.start()
        names = [f"p-{i:05d}" for i in range(nodes)]
        before, started = _cpu(bench), time.monotonic()
        await create_pods(bench.kube, (pod_body(n, SCHEDULER_NAME[contender]) for n in names))
        if contender == CEILING:
            binds = (partial(bind, bench.kube, n, node_name(i)) for i, n in enumerate(names))
            await run_all(binds, limit=BIND_CONCURRENCY)
        await bench.watcher.wait_all(bench.watcher.bound, names, deadline=DEADLINE, what="every pod bound")
        return await _finish(bench, run, names, started=started, seen=bench.watcher.bound, before=before)


async def idle_latency(contender: str, nodes: int, pods: int, work: Path) -> Run:
    """Pods created one at a time into an idle cluster, each after the last was bound."""
    run = Run(contender, f"idle latency ({nodes:,} nodes)", pods)
    async with bench_cluster(contender, nodes, work) as bench:
        await bench.start()
        names = [f"idle-{i:04d}" for i in range(pods)]
        before, started = _cpu(bench), time.monotonic()
        for i, name in enumerate(names):
            await create_pods(bench.kube, [pod_body(name, SCHEDULER_NAME[contender])])
            if contender == CEILING:
                await bind(bench.kube, name, node_name(i))
            await bench.watcher.wait_all(bench.watcher.bound, [name], deadline=60, what=f"{name} bound")
        return await _finish(bench, run, names, started=started, seen=bench.watcher.bound, before=before)


async def storm(contender: str, nodes: int, work: Path) -> Run:
    """Every node runs a low-priority pod; as many high-priority pods arrive: until all of them run."""
    run = Run(contender, f"preemption storm ({nodes:,} nodes)", nodes)
    async with bench_cluster(contender, nodes, work) as bench:
        await bench.create_classes()
        name = SCHEDULER_NAME[contender]
        low = [f"low-{i:05d}" for i in range(nodes)]
        high = [f"high-{i:05d}" for i in range(nodes)]
        await create_pods(
            bench.kube,
            (pod_body(p, name, priority_class="bench-low", node=node_name(i)) for i, p in enumerate(low)),
        )
        await bench.watcher.wait_all(
            bench.watcher.running, low, deadline=DEADLINE, what="every low pod running"
        )
        await bench.start()
        before, started = _cpu(bench), time.monotonic()
        await create_pods(bench.kube, (pod_body(p, name, priority_class="bench-high") for p in high))
        if contender == CEILING:

            async def take(i: int) -> None:
                eviction = {
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": {"name": low[i], "namespace": NS},
                }
                await expect(bench.kube, "POST", f"/api/v1/namespaces/{NS}/pods/{low[i]}/eviction", eviction)
                await bench.watcher.wait_all(
                    bench.watcher.deleted, [low[i]], deadline=DEADLINE, what=f"{low[i]} gone"
                )
                await bind(bench.kube, high[i], node_name(i))

            await run_all((partial(take, i) for i in range(nodes)), limit=BIND_CONCURRENCY)
        await bench.watcher.wait_all(
            bench.watcher.running, high, deadline=DEADLINE, what="every high pod running"
        )
        return await _finish(bench, run, high, started=started, seen=bench.watcher.running, before=before)


async def gangs(contender: str, count: int, nodes: int, work: Path, size: int = 3) -> Run:
    """`count` gangs of `size` (min-available = size) on `nodes` nodes, created at once."""
    run = Run(contender, f"gangs ({count:,} of {size} on {nodes:,} nodes)", count * size)
    uses_pod_groups = contender in CLIENT_RATE
    async with bench_cluster(contender, nodes, work, gangs=uses_pod_groups) as bench:
        await bench.start()
        groups = [f"g-{g:04d}" for g in range(count)]
        if uses_pod_groups:  # a gang's PodGroup exists before its pods, as a workload controller makes it
            path = f"/apis/scheduling.k8s.io/v1alpha2/namespaces/{NS}/podgroups"
            bodies = (
                {
                    "apiVersion": "scheduling.k8s.io/v1alpha2",
                    "kind": "PodGroup",
                    "metadata": {"name": g},
                    "spec": {"schedulingPolicy": {"gang": {"minCount": size}}},
                }
                for g in groups
            )
            await run_all(partial(expect, bench.kube, "POST", path, body) for body in bodies)
        members = [(g, f"{g}-{m}") for g in groups for m in range(size)]
        names = [n for _, n in members]

        def body(group: str, pod: str) -> dict[str, object]:
            if uses_pod_groups:
                return pod_body(pod, SCHEDULER_NAME[contender], pod_group=group)
            return pod_body(
                pod, SCHEDULER_NAME[contender], annotations={GROUP_NAME: group, MIN_AVAILABLE: str(size)}
            )

        before, started = _cpu(bench), time.monotonic()
        await create_pods(bench.kube, (body(g, p) for g, p in members))
        if contender == CEILING:
            await run_all(
                (partial(bind, bench.kube, n, node_name(i)) for i, n in enumerate(names)),
                limit=BIND_CONCURRENCY,
            )
        await bench.watcher.wait_all(bench.watcher.bound, names, deadline=DEADLINE, what="every gang bound")
        return await _finish(bench, run, names, started=started, seen=bench.watcher.bound, before=before)


async def churn(contender: str, nodes: int, seconds: float, rate: float, lifetime: float, work: Path) -> Run:
    """Pods created at `rate` per second for `seconds`, each deleted `lifetime` s after its creation."""
    run = Run(
        contender, f"churn ({nodes:,} nodes, {rate:.0f} pods/s for {seconds:.0f} s)", int(seconds * rate)
    )
    async with bench_cluster(contender, nodes, work) as bench:
        await bench.start()
        names = [f"c-{i:05d}" for i in range(run.pods)]
        before, started = _cpu(bench), time.monotonic()

        async def one(i: int) -> None:
            await anyio.sleep_until(started + i / rate)  # the load's own pace
            await create_pods(bench.kube, [pod_body(names[i], SCHEDULER_NAME[contender])])
            await anyio.sleep_until(started + i / rate + lifetime)
            await expect(bench.kube, "DELETE", f"/api/v1/namespaces/{NS}/pods/{names[i]}", ok=(200, 202, 404))

        async with anyio.create_task_group() as tg:
            for i in range(run.pods):
                tg.start_soon(one, i)
        bound = [n for n in names if n in bench.watcher.bound]
        run.unplaced = run.pods - len(bound)
        await _finish(bench, run, bound, started=started, seen=bench.watcher.bound, before=before, event=None)
        run.seconds = time.monotonic() - started
        return run


async def cache(contender: str, nodes: int, pods: int, work: Path) -> Run:
    """The scheduler started on a cluster with `pods` pending pods: until each is bound or has its reason."""
    run = Run(contender, f"cache ({nodes:,} nodes, {pods:,} pending pods)", pods)
    async with bench_cluster(contender, nodes, work) as bench:
        names = [f"m-{i:05d}" for i in range(pods)]
        say(f"       creating {pods:,} pods")
        await create_pods(bench.kube, (pod_body(n, SCHEDULER_NAME[contender]) for n in names))
        await bench.watcher.wait_all(bench.watcher.created, names, deadline=DEADLINE, what="every pod seen")
        await bench.start()
        before, started = _cpu(bench), time.monotonic()
        watcher = bench.watcher

        def settled() -> bool:
            return (
                len(watcher.bound) >= nodes
                and len(watcher.waiting.keys() - watcher.bound.keys()) >= pods - nodes
            )

        await watcher.wait_until(settled, deadline=DEADLINE, what="every pod bound or told why it waits")
        decided = {n: min(watcher.bound.get(n, 1e18), watcher.waiting.get(n, 1e18)) for n in names}
        return await _finish(bench, run, names, started=started, seen=decided, before=before, event=None)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is: the full run or --quick."""

    throughput: tuple[int, ...]
    idle_pods: int
    storm: int
    gangs: tuple[int, int]  # gangs, nodes
    churn_seconds: float
    cache: tuple[int, int]  # nodes, pods
    cache_contenders: tuple[str, ...]
    rounds: int  # of everything but the cache, a measure of memory, which runs once


# The cache workload runs ours only: kube-scheduler, its rate raised, had not bound or told every one
# of 50,000 pods why it waits after 30 minutes (BENCHMARKS.md).
FULL = Sizes((100, 1000, 5000), 100, 1000, (1000, 5000), 60, (5000, 50_000), (OURS,), 3)
QUICK = Sizes((100, 1000), 20, 200, (100, 500), 20, (1000, 5000), (OURS,), 1)
CHURN_NODES, CHURN_RATE, CHURN_LIFETIME = 1000, 20.0, 10.0


def plan(sizes: Sizes, work: Path) -> list[tuple[str, Callable[[], Awaitable[Run]]]]:
    """Every (label, run) of the benchmark, rounds interleaved so that a slow moment of the machine
    does not fall on one contender only."""
    schedulers = (OURS, *CLIENT_RATE)
    one_round: list[tuple[str, Callable[[], Awaitable[Run]]]] = []
    for nodes in sizes.throughput:
        one_round += [(f"throughput {nodes}, {c}", partial(throughput, c, nodes, work)) for c in CONTENDERS]
    one_round += [
        (f"idle latency, {c}", partial(idle_latency, c, 1000, sizes.idle_pods, work)) for c in CONTENDERS
    ]
    one_round += [
        (f"preemption storm {sizes.storm}, {c}", partial(storm, c, sizes.storm, work)) for c in CONTENDERS
    ]
    count, nodes = sizes.gangs
    one_round += [(f"gangs {count}, {c}", partial(gangs, c, count, nodes, work)) for c in CONTENDERS]
    one_round += [
        (
            f"churn, {c}",
            partial(churn, c, CHURN_NODES, sizes.churn_seconds, CHURN_RATE, CHURN_LIFETIME, work),
        )
        for c in schedulers
    ]
    rounds = [
        (f"round {r + 1}/{sizes.rounds}: {label}", call)
        for r in range(sizes.rounds)
        for label, call in one_round
    ]
    nodes, pods = sizes.cache
    return rounds + [
        (f"cache {pods}, {c}", partial(cache, c, nodes, pods, work)) for c in sizes.cache_contenders
    ]


async def main_async(sizes: Sizes, work: Path, only: str | None) -> list[Run]:
    """Every run, with progress on stderr."""
    runs: list[Run] = []
    todo = [(label, call) for label, call in plan(sizes, work) if only is None or only in label]
    for i, (label, call) in enumerate(todo, 1):
        say(f"bench [{i}/{len(todo)}] {label}")
        started = time.monotonic()
        run = await call()
        runs.append(run)
        extra = f", events {run.events_after:+.1f} s" if run.events_after is not None else ""
        usage = (
            f", CPU {run.cpu_seconds:.1f} s, peak RSS {run.peak_rss_mb:.0f} MiB" if run.peak_rss_mb else ""
        )
        say(
            f"       {run.rate:.0f} pods/s, p50 {run.percentile(0.5) * 1000:.0f} ms, "
            f"p99 {run.percentile(0.99) * 1000:.0f} ms{extra}{usage} ({time.monotonic() - started:.0f} s)"
        )
        (work / "runs.json").write_bytes(orjson.dumps([asdict(r) for r in runs]))
    return runs


def main() -> int:
    """Run the benchmarks; the full run writes BENCHMARKS.md's section and its plots."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and one round; written to .bench/"
    )
    parser.add_argument("--only", help="only the runs whose label contains this text (for profiling one)")
    parser.add_argument("--from-runs", type=Path, help="write the report from a runs.json of an earlier run")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    work = REPO / ".bench" / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.from_runs:
        runs = [Run(**r) for r in orjson.loads(args.from_runs.read_bytes())]
    else:
        runs = anyio.run(main_async, sizes, work, args.only)
    partial_run = args.quick or args.only
    figures = work if partial_run else REPO / "tests" / "bench" / "figures"
    target = work / "BENCHMARKS.md" if partial_run else REPO / "BENCHMARKS.md"
    section = report.section(runs, quick=args.quick, figures=figures, rounds=sizes.rounds, report=target)
    if partial_run:
        target.write_text(section)
        say(f"bench: report in {target}, plots and logs in {work}")
    else:
        write_section(section, title="Side by side with kube-scheduler")
        say(f"bench: BENCHMARKS.md written, plots in {figures}")
    print(section)
    say(f"bench: {len(runs)} runs in {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
