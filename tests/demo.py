"""`make demo`: SPEC section 11's two scenarios on a local control plane, told as they happen,
and a third: a pod kept off a tainted node, saying why.

It starts etcd, kube-apiserver, kube-controller-manager and KWOK with two simulated nodes,
runs `custom-scheduler run` as its own process (as `make run` would), applies the files of
`manifests/examples/` (real Jobs, the files a user would apply to a real cluster), waits for
each outcome with a deadline, prints the pods, their events and the scheduler's own log lines,
and tears everything down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import yaml

from custom_scheduler.kube import Kube, connect
from tests.harness.controlplane import REPO, ControlPlane, ControlPlaneError, kwok_node

EXAMPLES = REPO / "manifests" / "examples"
T = TypeVar("T")
_PATHS = {
    "PriorityClass": "/apis/scheduling.k8s.io/v1/priorityclasses",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}
_started = time.monotonic()


def say(message: str = "") -> None:
    """A line of the account, with the seconds since the demo started."""
    print(f"[{time.monotonic() - _started:5.1f}s] {message}" if message else "", flush=True)


async def apply(kube: Kube, name: str, namespace: str = "") -> None:
    """Create the objects of one example file, as `kubectl create -f` would."""
    for doc in yaml.safe_load_all(await anyio.Path(EXAMPLES / name).read_text()):
        path = _PATHS[doc["kind"]].format(ns=namespace)
        status, body = await kube.call("POST", path, doc)
        if status not in (200, 201, 409):
            raise RuntimeError(f"creating {doc['kind']} from {name}: {status} {body}")
    say(f"applied manifests/examples/{name}" + (f" in namespace {namespace}" if namespace else ""))


async def wait_for(what: str, check: Callable[[], Awaitable[T | None]], deadline: float = 60) -> T:
    """Poll until `check` returns something truthy."""
    with anyio.move_on_after(deadline):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.2)
    raise RuntimeError(f"gave up after {deadline:.0f}s waiting for {what}")


async def pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """The pods of a namespace."""
    _, body = await kube.call("GET", f"/api/v1/namespaces/{namespace}/pods")
    return list((body or {}).get("items") or [])


def _scheduled(pod: dict[str, Any]) -> dict[str, Any]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return dict(c)
    return {}


async def show(kube: Kube, namespace: str) -> None:
    """The pods (node, phase, why they wait) and their events, as `kubectl describe` would say."""
    items = await pods(kube, namespace)
    say(f"pods in {namespace}:")
    for pod in sorted(items, key=lambda p: p["metadata"]["name"]):
        scheduled = _scheduled(pod)
        why = scheduled.get("message", "") if scheduled.get("status") == "False" else ""
        print(
            f"         {pod['metadata']['name']:<28} node={pod['spec'].get('nodeName') or '-':<8} "
            f"phase={pod['status'].get('phase', '?'):<8} {why}"
        )
    _, body = await kube.call("GET", f"/api/v1/namespaces/{namespace}/events")
    events = sorted((body or {}).get("items") or [], key=lambda e: e.get("lastTimestamp") or "")
    ours = [e for e in events if (e.get("source") or {}).get("component") == "custom-scheduler"]
    say(f"events from custom-scheduler in {namespace}:")
    for e in ours:
        print(f"         {e['type']:<7} {e['reason']:<16} {e['involvedObject']['name']:<24} {e['message']}")


async def scenario_one(kube: Kube) -> None:
    """Demo one: a low-priority gang of two cannot fit beside a high-priority pod."""
    ns = "demo-one"
    say("=== Demo one: high-priority pod running, low-priority gang of two arrives ===")
    await kube.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await apply(kube, "pod-highpri.yaml", ns)

    async def high_running() -> bool:
        return any(p["status"].get("phase") == "Running" for p in await pods(kube, ns))

    await wait_for("test-pod-high-pri to run", high_running)
    say("test-pod-high-pri is Running")
    await apply(kube, "job-two-lowpri.yaml", ns)

    async def both_wait_with_a_reason() -> bool:
        job = [p for p in await pods(kube, ns) if p["metadata"]["name"].startswith("job-two-lowpri-")]
        return len(job) == 2 and all(
            _scheduled(p).get("reason") == "Unschedulable"
            and "can be had" in _scheduled(p).get("message", "")
            for p in job
        )

    await wait_for("both Job pods to say why they wait", both_wait_with_a_reason)
    say("result: neither Job pod is bound; both wait and say why (no preempting equal or higher priority)")
    await show(kube, ns)
    await kube.call("DELETE", f"/api/v1/namespaces/{ns}")

    async def cleared() -> bool:
        status, _ = await kube.call("GET", f"/api/v1/namespaces/{ns}")
        return status == 404

    await wait_for("demo one's namespace to be gone", cleared, deadline=90)
    say("demo one cleaned up (its namespace deleted)")


async def scenario_two(kube: Kube) -> None:
    """Demo two: a high-priority gang of two preempts a low-priority pod; both run."""
    ns = "demo-two"
    say("")
    say("=== Demo two: low-priority pod running, high-priority gang of two arrives ===")
    await kube.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await apply(kube, "pod-lowpri.yaml", ns)

    async def low_running() -> bool:
        return any(p["status"].get("phase") == "Running" for p in await pods(kube, ns))

    await wait_for("test-pod-low-pri to run", low_running)
    say("test-pod-low-pri is Running")
    await apply(kube, "job-two-highpri.yaml", ns)

    async def low_terminating() -> bool:
        return any(
            p["metadata"]["name"] == "test-pod-low-pri" and p["metadata"].get("deletionTimestamp")
            for p in await pods(kube, ns)
        )

    await wait_for("the low pod to be evicted", low_terminating)
    nominated = [
        f"{p['metadata']['name']} -> {p['status'].get('nominatedNodeName')}"
        for p in await pods(kube, ns)
        if p["status"].get("nominatedNodeName")
    ]
    say(f"test-pod-low-pri evicted (grace period 5s); nominated: {', '.join(nominated) or '(not yet seen)'}")

    async def both_run_low_gone() -> bool:
        items = await pods(kube, ns)
        job = [p for p in items if p["metadata"]["name"].startswith("job-two-highpri-")]
        low = [p for p in items if p["metadata"]["name"] == "test-pod-low-pri"]
        return not low and len(job) == 2 and all(p["status"].get("phase") == "Running" for p in job)

    await wait_for("both Job pods to run", both_run_low_gone)
    say(
        "result: the low pod is gone (a bare pod is not recreated); both Job pods were bound together and run"
    )
    await show(kube, ns)


CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}


async def scenario_three(kube: Kube) -> None:
    """Where a pod may run (SPEC 2): a tainted node keeps a pod off, and the pod says why."""
    ns = "demo-three"
    say("")
    say("=== Demo three: both nodes busy, a third that is the control plane's (tainted NoSchedule) ===")
    await kube.call("POST", "/api/v1/nodes", kwok_node("control-plane-1", taints=[CONTROL_PLANE_TAINT]))
    await kube.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await apply(kube, "pod-plain.yaml", ns)

    async def waits_for_the_taint() -> bool:
        plain = [p for p in await pods(kube, ns) if p["metadata"]["name"] == "test-pod-plain"]
        return bool(plain) and "untolerated taint" in _scheduled(plain[0]).get("message", "")

    await wait_for("test-pod-plain to say why it waits", waits_for_the_taint)
    say("test-pod-plain waits: the only free node carries a taint it does not tolerate, and it says so")
    await apply(kube, "pod-tolerates-control-plane.yaml", ns)

    async def tolerant_runs() -> bool:
        return any(
            p["metadata"]["name"] == "test-pod-tolerant" and p["status"].get("phase") == "Running"
            for p in await pods(kube, ns)
        )

    await wait_for("test-pod-tolerant to run", tolerant_runs)
    say(
        "result: test-pod-tolerant (it tolerates the taint) runs on control-plane-1; "
        "test-pod-plain still waits"
    )
    await show(kube, ns)


def print_log(path: Path) -> None:
    """The scheduler's own decisions, from its JSON log lines."""
    keep = (
        "pod_bound",
        "pod_nominated",
        "pod_evicted",
        "pod_unschedulable",
        "nomination_cleared",
        "eviction_refused",
    )
    say("")
    say("the scheduler's log (its decisions; `jq` reads the same lines, see README):")
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") in keep:
            fields = " ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("event", "level", "timestamp", "component")
            )
            print(f"         {entry['timestamp'][11:23]} {entry['event']:<18} {fields}")


async def play(plane: ControlPlane, log: Path) -> None:
    """Nodes, the scheduler process, both scenarios."""
    async with connect(str(plane.kubeconfig), None) as kube:
        for name in ("node-1", "node-2"):
            await kube.call("POST", "/api/v1/nodes", kwok_node(name))

        async def ready() -> bool:
            _, body = await kube.call("GET", "/api/v1/nodes")
            conditions = [
                c for n in (body or {}).get("items") or [] for c in n["status"].get("conditions") or []
            ]
            return sum(1 for c in conditions if c["type"] == "Ready" and c["status"] == "True") == 2

        await wait_for("two Ready nodes", ready)
        say("two simulated nodes (KWOK) are Ready: node-1, node-2")
        await apply(kube, "priority-classes.yaml")
        with log.open("wb") as out:
            scheduler = await anyio.open_process(
                [
                    sys.executable,
                    "-m",
                    "custom_scheduler",
                    "run",
                    f"--kubeconfig={plane.kubeconfig}",
                    "--log-format=json",
                    "--health-port=0",  # beside a `make run` of yours, which serves 10251
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        say(f"custom-scheduler run started (pid {scheduler.pid}), logging JSON lines to {log}")
        try:
            await scenario_one(kube)
            await scenario_two(kube)
            await scenario_three(kube)
        finally:
            scheduler.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                code = await scheduler.wait()
            say(f"custom-scheduler stopped on SIGTERM, exit status {code}")
        print_log(log)


def _new_log() -> str:
    """A log file of this run's own (two demos at once, or one after another, keep theirs)."""
    descriptor, path = tempfile.mkstemp(
        prefix=f"custom-scheduler-demo-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log"
    )
    os.close(descriptor)
    return path


def main() -> int:
    """Run the demo; 0 when both scenarios ended as SPEC says."""
    say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager, KWOK)")
    log = Path(os.environ.get("DEMO_LOG") or _new_log())
    try:
        with ControlPlane() as plane:
            anyio.run(play, plane, log)
    except ControlPlaneError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    say("done; the control plane is stopped and its directory removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
