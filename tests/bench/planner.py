"""`make bench-planner`: how fast one pass plans, on generated clusters shaped like `kubectl get -o json`.

Clusters of 1,000 nodes / 10,000 pods and 5,000 nodes / 50,000 pods: half the pods bound
(most of them another scheduler's, ours on about 80% of the nodes), the other half ours and
pending; 30% of our pods in gangs; five priority classes; some nodes NotReady or cordoned, some
pods terminating, some nominated. It measures `plan()` alone (median of 5), converting the
API objects, and the whole `custom-scheduler plan --snapshot FILE` process (median of 3), and
writes the figures into BENCHMARKS.md's "Planner" section. It asserts nothing: figures, not tests.

    python -m tests.bench.planner            # both sizes
    python -m tests.bench.planner --profile  # cProfile of plan() on the large one
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import os
import platform
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from custom_scheduler.convert import snapshot_from_list
from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE, Node, Pod, Snapshot
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"batch": 10, "default": 100, "service": 1000, "critical": 10000, "system": 100000}
SIZES = ((1_000, 10_000), (5_000, 50_000))


def _stamp(seconds: int) -> str:
    return (
        datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(name: str, rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": _stamp(0),
            "labels": {"kubernetes.io/hostname": name, "pool": rng.choice("ab")},
            "managedFields": [{"manager": "kubelet", "operation": "Update", "subresource": "status"}],
        },
        "spec": {"unschedulable": rng.random() < 0.01},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {
                    "type": "Ready",
                    "status": "True" if rng.random() > 0.01 else "False",
                    "reason": "KubeletReady",
                },
            ],
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        },
    }


class _Unit:
    """What pods of one unit (a gang, or a single pod) share: namespace, class, creation time."""

    def __init__(self, rng: random.Random) -> None:
        self.namespace = f"team-{rng.randrange(20)}"
        self.klass = rng.choice(list(CLASSES))
        self.created = rng.randrange(86_400)
        # How the pod's priority is known: admission filled spec.priority (most), the class
        # only (admission off), or nothing at all (the globalDefault class applies).
        draw = rng.random()
        self.route = "spec" if draw < 0.8 else "class" if draw < 0.95 else "default"


def _pod(
    name: str, unit: _Unit, *, scheduler: str, node: str = "", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": {}}],
        "restartPolicy": "Never",
    }
    if unit.route != "default":
        spec["priorityClassName"] = unit.klass
    if unit.route == "spec":
        spec["priority"] = CLASSES[unit.klass]
        spec["preemptionPolicy"] = "PreemptLowerPriority"
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": unit.namespace,
            "uid": f"uid-{unit.namespace}-{name}",
            "creationTimestamp": _stamp(unit.created),
            "labels": {"app": name.rsplit("-", 1)[0]},
            "annotations": annotations or {},
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
        },
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending", "qosClass": "BestEffort"},
    }


def generate(n_nodes: int, n_pods: int, seed: int = 1) -> dict[str, Any]:
    """A `kubectl get nodes,pods,priorityclasses -A -o json` List of this size.

    Half the pods are bound and Running: ours on 80% of the nodes (one per node, the rule),
    another scheduler's for the rest. The other half are ours and pending. Of all our pods, 30%
    are in gangs of 2 to 8 (min-available = size, one namespace and class per gang): some fully
    running, some partly running with members still pending, most all pending. 1% of our bound
    pods are terminating, 1% of pending singles are nominated, 1% of nodes are NotReady or cordoned.
    """
    rng = random.Random(seed)
    nodes = [f"node-{i:05d}" for i in range(n_nodes)]
    items: list[dict[str, Any]] = [_node(n, rng) for n in nodes]
    items += [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": k, "uid": f"uid-{k}"},
            "value": v,
            "globalDefault": k == "default",
            "preemptionPolicy": "PreemptLowerPriority",
        }
        for k, v in CLASSES.items()
    ]
    ours_bound = int(n_nodes * 0.8)
    ours_free = rng.sample(nodes, ours_bound)  # the nodes our bound pods take, one each
    bound_left, pending_left = ours_bound, n_pods // 2
    ours: list[tuple[str, _Unit, str, dict[str, str]]] = []  # name, unit, node ("": pending), annotations

    gang_left = int(0.3 * (bound_left + pending_left))
    g = 0
    while gang_left >= 2:
        size = min(rng.randint(2, 8), gang_left)
        draw = rng.random()
        # Members already running: all of them, some of them, or none.
        running = size if draw < 0.15 else rng.randint(1, size - 1) if draw < 0.35 else 0
        if running > bound_left or size - running > pending_left:
            break
        unit = _Unit(rng)
        annotations = {GROUP_NAME: f"job-{g}", MIN_AVAILABLE: str(size)}
        for m in range(size):
            node = ours_free.pop() if m < running else ""
            ours.append((f"job-{g}-{m}", unit, node, annotations))
        bound_left -= running
        pending_left -= size - running
        gang_left -= size
        g += 1
    for i in range(bound_left):
        ours.append((f"svc-{i}", _Unit(rng), ours_free.pop(), {}))
    for i in range(pending_left):
        ours.append((f"web-{i}", _Unit(rng), "", {}))

    for name, unit, node, annotations in ours:
        pod = _pod(name, unit, scheduler="custom-scheduler", node=node, annotations=annotations)
        if node and rng.random() < 0.01:
            pod["metadata"]["deletionTimestamp"] = _stamp(90_000)
        elif not node and not annotations and rng.random() < 0.01:
            pod["status"]["nominatedNodeName"] = rng.choice(nodes)
        items.append(pod)
    for i in range(n_pods // 2 - ours_bound):
        items.append(_pod(f"other-{i}", _Unit(rng), scheduler="default-scheduler", node=rng.choice(nodes)))
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


# The heterogeneous cluster: ten pools of nodes, some tainted, with their own allocatable, and
# twenty kinds of pod (selector, affinity, tolerations, requests) over them.
GPU = "nvidia.com/gpu"
POOLS: tuple[tuple[str, dict[str, str], list[dict[str, str]]], ...] = tuple(
    (
        f"pool-{i}",
        {"cpu": str(16 * (1 + i % 4)), "memory": f"{64 * (1 + i % 4)}Gi", "pods": "110"}
        | ({GPU: str(4 * (1 + i % 2))} if i >= 6 else {}),
        [{"key": "dedicated", "value": f"team-{i}", "effect": "NoSchedule"}] if i in (3, 7, 9) else [],
    )
    for i in range(10)
)


def _shape(i: int) -> dict[str, Any]:
    """The i-th of 20 kinds of pod: where it may run and what it requests."""
    pool = f"pool-{i % 10}"
    spec: dict[str, Any] = {}
    if i % 4 == 0:
        spec["nodeSelector"] = {"pool": pool}
    elif i % 4 == 1:
        pools = [f"pool-{(i + k) % 10}" for k in range(3)]
        term = {"matchExpressions": [{"key": "pool", "operator": "In", "values": pools}]}
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    if i % 5 in (1, 3):
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    requests = {"cpu": f"{(i % 3 + 1) * 4}", "memory": f"{(i % 3 + 1) * 8}Gi"}
    if i % 7 == 6:
        requests[GPU] = str(4 * (1 + i % 2))
    spec["containers"] = [
        {"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": requests}}
    ]
    return spec


def heterogeneous(n_nodes: int, n_pods: int, seed: int = 2) -> dict[str, Any]:
    """The cluster of `generate`, its nodes in ten pools (three tainted; gpus in four; allocatable by
    pool), its pods of twenty kinds (selector, affinity, tolerations, requests), and the other
    scheduler's pods requesting cpu and memory on the nodes they run on."""
    doc = generate(n_nodes, n_pods, seed)
    rng = random.Random(seed)
    pool_of: dict[str, int] = {}
    kinds: dict[str, int] = {}  # a gang's kind
    for item in doc["items"]:
        if item["kind"] == "Node":
            index = rng.randrange(10)
            name, allocatable, taints = POOLS[index]
            pool_of[item["metadata"]["name"]] = index
            item["metadata"]["labels"]["pool"] = name
            item["status"]["allocatable"] = allocatable
            if taints:
                item["spec"]["taints"] = taints
        elif item["kind"] == "Pod" and item["spec"]["schedulerName"] != "custom-scheduler":
            item["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "2Gi"}}
        elif item["kind"] == "Pod":
            node = item["spec"].get("nodeName")
            # A gang's members share a kind, as the pods of one Job do; a bound pod's kind is one
            # its node fits (its gang's, where it may be one).
            group = item["metadata"]["annotations"].get(GROUP_NAME)
            kind = kinds.get(group) if group else None
            if kind is None:
                kind = rng.randrange(20)
                if node:
                    kind = next(
                        k for k in [*range(pool_of[node], 20, 10), *range(20)] if _fits(k, pool_of[node])
                    )
                if group:
                    kinds[group] = kind
            shape = _shape(kind)
            shape["containers"][0]["image"] = item["spec"]["containers"][0]["image"]
            item["spec"].update(shape)
    return doc


def _fits(kind: int, pool: int) -> bool:
    """Whether pods of this kind may run in this pool (for the bound pods of the generated cluster)."""
    spec, (name, allocatable, taints) = _shape(kind), POOLS[pool]
    if spec.get("nodeSelector", {}).get("pool", name) != name:
        return False
    terms = spec.get("affinity", {}).get("nodeAffinity", {})
    if (
        terms
        and name
        not in terms["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
            "matchExpressions"
        ][0]["values"]
    ):
        return False
    if taints and not spec.get("tolerations"):
        return False
    return GPU not in spec["containers"][0]["resources"]["requests"] or GPU in allocatable


def _median_seconds(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(n_nodes: int, n_pods: int, *, mixed: bool = False) -> dict[str, Any]:
    """Figures for one size (`mixed`: the heterogeneous cluster); progress on stderr."""
    kind = "heterogeneous" if mixed else "homogeneous"
    print(f"  {n_nodes:,} nodes, {n_pods:,} pods, {kind}: generating", file=sys.stderr, flush=True)
    doc = heterogeneous(n_nodes, n_pods) if mixed else generate(n_nodes, n_pods)
    raw = orjson.dumps(doc)
    gc.disable()  # as the CLI parses and converts
    parse_s = _median_seconds(lambda: orjson.loads(raw), 3)
    snapshot: Snapshot = snapshot_from_list(doc)
    convert_s = _median_seconds(lambda: snapshot_from_list(doc), 3)
    gc.enable()
    print(
        "    timing plan() x5, with the collector on, then paused as the scheduler runs it",
        file=sys.stderr,
        flush=True,
    )
    plan_gc_s = _median_seconds(lambda: plan(snapshot, settings=Settings()), 5)
    gc.disable()
    plan_s = _median_seconds(lambda: plan(snapshot, settings=Settings()), 5)
    gc.enable()
    result = plan(snapshot, settings=Settings())
    print(
        "    timing the whole `custom-scheduler plan --snapshot FILE` process x3", file=sys.stderr, flush=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.json"
        path.write_bytes(raw)
        command = [sys.executable, "-m", "custom_scheduler", "plan", "--snapshot", str(path)]
        outputs: list[bytes] = []
        process_s = _median_seconds(
            lambda: outputs.append(subprocess.run(command, check=True, capture_output=True).stdout), 3
        )
    # Not a timing assertion: the process must have planned what plan() did, or its time means nothing.
    if orjson.loads(outputs[0]) != result.to_json():
        raise SystemExit("the plan process printed another plan than plan() returned")
    return {
        "cluster": kind,
        "nodes": n_nodes,
        "pods": n_pods,
        "plan_s": plan_s,
        "plan_gc_s": plan_gc_s,
        "parse_s": parse_s,
        "convert_s": convert_s,
        "megabytes": len(raw) / 1e6,
        "process_s": process_s,
        "binds": len(result.binds),
        "nominations": len(result.nominations),
        "evictions": len(result.evictions),
        "unschedulable": len(result.unschedulable),
    }


def big_gang(members: int) -> Snapshot:
    """One running gang of `members` (min-available all of them) on as many nodes, and one pod of
    higher priority pending: preempting it evicts the whole gang (SPEC 6, gang integrity)."""
    ann = {GROUP_NAME: "big", MIN_AVAILABLE: str(members)}
    nodes = tuple(Node(f"node-{i:05d}") for i in range(members))
    pods = tuple(
        Pod(
            "batch",
            f"big-{i:05d}",
            uid=f"big-{i}",
            phase="Running",
            node_name=f"node-{i:05d}",
            priority=0,
            annotations=ann,
        )
        for i in range(members)
    )
    return Snapshot(nodes, (*pods, Pod("batch", "urgent", uid="urgent", priority=1000)))


def measure_big_gang(members: int) -> dict[str, Any]:
    """plan() when one pending pod preempts a running gang of `members` (median of 3)."""
    print(f"  a running gang of {members:,} preempted", file=sys.stderr, flush=True)
    snapshot = big_gang(members)
    gc.disable()
    seconds = _median_seconds(lambda: plan(snapshot, settings=Settings()), 3)
    gc.enable()
    result = plan(snapshot, settings=Settings())
    if len(result.evictions) != members:
        raise SystemExit("the gang was not evicted whole")
    return {"members": members, "plan_s": seconds}


def machine() -> str:
    """CPU model, cores, Python."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # Linux; elsewhere platform's answer stands
        models = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(rows: list[dict[str, Any]], gangs: list[dict[str, Any]]) -> str:
    """The Markdown section."""
    lines = [
        "## Planner",
        "",
        f"`make bench-planner` on {datetime.date.today().isoformat()}: {machine()}. One core (the planner is",
        "single-threaded). Clusters shaped like `kubectl get nodes,pods,priorityclasses -A -o json`",
        "(seeded): half the pods bound and Running (ours on 80% of the nodes, one each, the rest another",
        "scheduler's), half ours and pending; 30% of ours in gangs of 2 to 8 (min-available = size; some",
        "fully running, some partly running, most all pending); five priority classes, one the",
        "global default, priorities from `spec.priority` (80%), the class only (15%) or the default (5%);",
        "1% of nodes NotReady or cordoned, 1% of our bound pods terminating, 1% of pending pods nominated.",
        "The heterogeneous cluster is the same with its nodes in ten pools (three tainted, gpus in four,",
        "allocatable by pool), our pods of twenty kinds (node selector, required affinity, tolerations,",
        "cpu, memory and gpu requests), and the other scheduler's pods requesting cpu and memory.",
        "",
        "| cluster | nodes | pods | JSON | `plan()` | `plan()`, collector on | parse JSON (orjson) | "
        "convert | whole `plan --snapshot` process | binds | nominations | evictions | pending |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['cluster']} | {r['nodes']:,} | {r['pods']:,} | {r['megabytes']:.0f} MB | "
            f"{r['plan_s']:.3f} s | {r['plan_gc_s']:.3f} s | {r['parse_s']:.3f} s | {r['convert_s']:.3f} s | "
            f"{r['process_s']:.2f} s | {r['binds']:,} | {r['nominations']:,} | {r['evictions']:,} | "
            f"{r['unschedulable']:,} |"
        )
    big = next(r for r in rows if r["cluster"] == "homogeneous" and r["nodes"] == 5_000)
    mixed = next(r for r in rows if r["cluster"] == "heterogeneous")
    lines += [
        "",
        f"Targets on 5,000 nodes and 50,000 pods: `plan()` under 0.5 s ({big['plan_s']:.3f} s: "
        f"{'met' if big['plan_s'] < 0.5 else 'missed'}), and under 0.3 s on the heterogeneous cluster "
        f"({mixed['plan_s']:.3f} s: {'met' if mixed['plan_s'] < 0.3 else 'missed'}); the whole process "
        f"under 3 s, parsing included ({big['process_s']:.2f} s: "
        f"{'met' if big['process_s'] < 3 else 'missed'}).",
        "",
        "One pending pod preempting one running gang (evicted whole: gang integrity), `plan()` median of 3:",
        "",
        "| gang members | `plan()` |",
        "| ---: | ---: |",
        *(f"| {g['members']:,} | {g['plan_s']:.3f} s |" for g in gangs),
        "",
        "`plan()` is timed as the scheduler and the CLI run it, with Python's cyclic collector paused for",
        "the pass (medians of 5). With the collector on, it rescans every live object, here the million",
        "objects of the parsed JSON besides the snapshot, many times per pass: that column. Parsing and",
        "converting (collector paused, as the CLI runs them) are medians of 3; so is the whole process",
        "(start, read, parse, convert, plan, print).",
        "",
        "Work is near-linear: sets of nodes are bit sets over the eligible nodes in name order (the first",
        "free node, the nodes of lower priority, the nodes a kind of pod may run on: a few machine-word",
        "operations on thousands of nodes); pods with equal constraints share one evaluation of the",
        "filters; units that fail alike while nothing changes share one answer; a running gang evicted",
        "whole is gathered once.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = REPO / "BENCHMARKS.md", *, title: str = "Planner") -> None:
    """Replace (or add) the section `## title` in BENCHMARKS.md, keeping the others."""
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nFigures, not tests: written by `make bench*`.\n\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    """Run the benchmark (or the profile)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", action="store_true", help="cProfile plan() on the large cluster")
    args = parser.parse_args()
    if args.profile:
        snapshot = snapshot_from_list(generate(*SIZES[-1]))
        profiler = cProfile.Profile()
        gc.disable()  # as the scheduler and the CLI run a pass
        profiler.runcall(plan, snapshot, settings=Settings())
        gc.enable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return 0
    print("planner benchmark:", file=sys.stderr)
    rows = [measure(n, p) for n, p in SIZES]
    rows.append(measure(*SIZES[-1], mixed=True))
    gangs = [measure_big_gang(members) for members in (2_000, 4_000, 8_000)]
    section = report(rows, gangs)
    write_section(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
