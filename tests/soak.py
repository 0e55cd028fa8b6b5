"""`make soak`: random churn on the local control plane, an independent checker counting violations.

The scheduler runs as its own process (`custom-scheduler run`). A churn task creates and deletes
pods and gangs of mixed priorities, and adds, cordons, uncordons, breaks (NotReady) and removes
nodes. A broken node stays NotReady until the churn heals it (KWOK holds it: HOLD_NOT_READY), so
the scheduler plans around it for seconds, not the tenth of a second KWOK would leave it; the
report says for how long, in node-seconds. A checker, reading only the API, counts:

- two of our pods on one node (a nominee bound while its victim is still there counts);
- a gang we started below its min-available (bound members, not terminating, fewer than it
  needs, for 5 s);
- a pending pod with no reason (no PodScheduled message and no nominated node, for 15 s);
- an error in the scheduler's log (level error or critical, or a traceback);
- a wasted eviction (SPEC 9.8): a node freed by preempting a pod that is not a gang member went,
  while its preemptor's unit was still there, to a pod of neither that unit nor a strictly higher
  priority (read from the `Preempted` events and the binds that follow);
- the scheduler's RSS growth (sampled; the first sample after a warm-up is the base).

Its churn includes a stream of short-lived single pods at the priority of gangs (KWOK finishes
them 4 s after they run), so gangs starve unless they reserve (SPEC 6a): the report gives the
longest a gang waited between its pods first saying that it reserves and its last bind.

    python -m tests.soak --minutes 10   # `make soak`; the report goes to stdout, as Markdown
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from custom_scheduler.kube import Kube, connect
from tests.harness.controlplane import HOLD_NOT_READY, ControlPlane, kwok_node

NS = "soak"
LABEL = ("soak", "yes")
CLASSES = {"soak-low": 10, "soak-mid": 100, "soak-high": 1000}
GROUP, MIN = "custom-scheduling.k8s.io/group-name", "custom-scheduling.k8s.io/min-available"


@dataclass
class Report:
    """What the soak saw."""

    seconds: float = 0.0
    actions: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    rss_kib: list[int] = field(default_factory=list)
    bound: int = 0
    checks: int = 0
    checks_with_not_ready: int = 0  # checks that saw at least one soak node NotReady
    not_ready_seconds: float = 0.0  # node-seconds NotReady, as the checks saw them
    most_not_ready: int = 0  # the most soak nodes NotReady at once
    reserved_gangs: int = 0  # gangs seen reserving nodes (SPEC 6a) and then bound
    longest_reserving_s: float = 0.0  # the longest of their waits, first "reserves" to bound

    def violate(self, kind: str, example: str) -> None:
        """Count one violation (the first of each kind is kept as an example)."""
        self.violations[kind] += 1
        self.examples.setdefault(kind, example)

    @property
    def rss_growth_kib(self) -> int:
        """Peak RSS after the warm-up minus the first sample after it."""
        base = self.rss_kib[len(self.rss_kib) // 4 :] if self.rss_kib else [0]
        return max(base) - base[0] if base else 0

    def markdown(self) -> str:
        """The report table."""
        rows = [
            ("two of our pods on one node", self.violations["two_on_a_node"]),
            ("a gang started below its min-available", self.violations["partial_gang"]),
            ("a pending pod with no reason", self.violations["no_reason"]),
            ("an error in the scheduler's log", self.violations["log_error"]),
            ("a wasted eviction (the freed node went to an equal or lower unit)", self.violations["wasted"]),
        ]
        lines = [
            f"Soak of {self.seconds:.0f} s: {sum(self.actions.values())} churn actions "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.actions.items()))}); {self.bound} binds.",
            f"Nodes NotReady: {self.not_ready_seconds:.0f} node-seconds, at most {self.most_not_ready} "
            f"at once; {self.checks_with_not_ready} of {self.checks} checks saw one.",
            f"Gangs that reserved nodes and ran: {self.reserved_gangs}; the longest wait from reserving "
            f"to running: {self.longest_reserving_s:.0f} s.",
            "",
            "| violation | count |",
            "| --- | ---: |",
            *[f"| {name} | {count} |" for name, count in rows],
            f"| scheduler RSS growth after warm-up | {self.rss_growth_kib} KiB "
            f"(from {self.rss_kib[len(self.rss_kib) // 4] if self.rss_kib else 0} KiB) |",
        ]
        for kind, example in self.examples.items():
            lines.append(f"\n{kind}: {example}")
        return "\n".join(lines)


def _pod(
    name: str, klass: str | None, annotations: dict[str, str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": "custom-scheduler",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "pause"}],
    }
    if klass:
        spec["priorityClassName"] = klass
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations, "labels": labels or {}},
        "spec": spec,
    }


SHORT_LIVED = {"custom-scheduler.dev/short-lived": "true"}  # KWOK finishes it 4 s after it runs
STREAM_CLASS = "soak-mid"  # the stream of singles runs at a gang priority


class Churn:
    """Random changes to pods, gangs and nodes, within bounds."""

    def __init__(self, kube: Kube, rng: random.Random, report: Report) -> None:
        self.kube, self.rng, self.report = kube, rng, report
        self.serial = 0
        self.nodes: list[str] = []
        self.not_ready: set[str] = set()  # broken by `not_ready`, until `ready` heals them
        self.singles: list[str] = []
        self.gangs: dict[str, list[str]] = {}
        self.deleting_gangs: set[str] = set()

    def _name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:05d}"

    async def add_node(self) -> None:
        """A new KWOK node (names are never reused)."""
        name = self._name("soak-node")
        status, _ = await self.kube.call("POST", "/api/v1/nodes", kwok_node(name, labels=dict([LABEL])))
        if status in (200, 201):
            self.nodes.append(name)

    async def break_node(self, node: str) -> None:
        """NotReady until healed: KWOK is told to hold it first, else it makes it Ready at once."""
        hold = {"metadata": {"annotations": {HOLD_NOT_READY: "soak"}}}
        await self.kube.call(
            "PATCH", f"/api/v1/nodes/{node}", hold, content_type="application/merge-patch+json"
        )
        conditions = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Soak"}]}}
        status, _ = await self.kube.call(
            "PATCH",
            f"/api/v1/nodes/{node}/status",
            conditions,
            content_type="application/strategic-merge-patch+json",
        )
        if status == 200:
            self.not_ready.add(node)

    async def heal_node(self, node: str) -> None:
        """Let KWOK make it Ready again, as a kubelet that comes back."""
        release = {"metadata": {"annotations": {HOLD_NOT_READY: None}}}
        await self.kube.call(
            "PATCH", f"/api/v1/nodes/{node}", release, content_type="application/merge-patch+json"
        )
        self.not_ready.discard(node)

    async def step(self) -> None:
        """One random action."""
        rng = self.rng
        action = rng.choices(
            [
                "pod",
                "stream",
                "gang",
                "delete_pod",
                "delete_gang",
                "add_node",
                "cordon",
                "uncordon",
                "not_ready",
                "ready",
                "remove_node",
            ],
            weights=[30, 20, 10, 20, 6, 4, 3, 3, 2, 2, 1],
        )[0]
        if action == "pod" and len(self.singles) < 40:
            name = self._name("solo")
            klass = rng.choice([*CLASSES, None])
            status, _ = await self.kube.call("POST", f"/api/v1/namespaces/{NS}/pods", _pod(name, klass, {}))
            if status in (200, 201):
                self.singles.append(name)
        elif action == "stream":
            # Short-lived singles at a gang priority: every node that frees has one waiting.
            name = self._name("stream")
            body = _pod(name, STREAM_CLASS, {}, SHORT_LIVED)
            await self.kube.call("POST", f"/api/v1/namespaces/{NS}/pods", body)
        elif action == "gang" and len(self.gangs) < 8:
            gang, size = self._name("gang"), rng.randint(2, 4)
            klass = rng.choice(list(CLASSES))
            members = [f"{gang}-{i}" for i in range(size)]
            for member in members:
                body = _pod(member, klass, {GROUP: gang, MIN: str(size)})
                await self.kube.call("POST", f"/api/v1/namespaces/{NS}/pods", body)
            self.gangs[gang] = members
        elif action == "delete_pod" and self.singles:
            name = self.singles.pop(rng.randrange(len(self.singles)))
            await self.kube.call("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}")
        elif action == "delete_gang" and self.gangs:
            gang = rng.choice(sorted(self.gangs))
            self.deleting_gangs.add(gang)
            for member in self.gangs.pop(gang):
                await self.kube.call("DELETE", f"/api/v1/namespaces/{NS}/pods/{member}")
        elif action == "add_node" and len(self.nodes) < 14:
            await self.add_node()
        elif action in ("cordon", "uncordon") and self.nodes:
            node = rng.choice(self.nodes)
            patch = {"spec": {"unschedulable": action == "cordon"}}
            await self.kube.call(
                "PATCH", f"/api/v1/nodes/{node}", patch, content_type="application/merge-patch+json"
            )
        elif action == "not_ready" and len(self.not_ready) < len(self.nodes) // 2:
            await self.break_node(rng.choice([n for n in self.nodes if n not in self.not_ready]))
        elif action == "ready" and self.not_ready:
            await self.heal_node(rng.choice(sorted(self.not_ready)))
        elif action == "remove_node" and len(self.nodes) > 4:
            node = self.nodes.pop(rng.randrange(len(self.nodes)))
            self.not_ready.discard(node)
            await self.kube.call("DELETE", f"/api/v1/nodes/{node}")
        else:
            return
        self.report.actions[action] += 1


class Checker:
    """Reads the API and counts violations; partial states must last to count (binds are concurrent)."""

    def __init__(
        self, kube: Kube, report: Report, churn: Churn, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube, self.report, self.churn, self.clock = kube, report, churn, clock
        self.since: dict[str, float] = {}
        self.bound: set[str] = set()
        self.last_check: float | None = None
        self.last_not_ready = 0  # soak nodes NotReady at the last check
        self.known: dict[str, tuple[str | None, int]] = {}  # pod -> (gang, priority), as last seen
        self.preempted: set[str] = set()  # the uids of Preempted events counted
        # node -> (preemptor, its gang, its priority), for nodes freed by an eviction
        self.freed: dict[str, tuple[str, str | None, int]] = {}
        self.reserving_since: dict[str, float] = {}  # gang -> when it was first seen reserving

    def _lasting(self, key: str, bad: bool, seconds: float) -> bool:
        """True once `bad` has held for `seconds` (counted once per episode)."""
        now = self.clock()
        if not bad:
            self.since.pop(key, None)
            return False
        started = self.since.setdefault(key, now)
        if started and now - started >= seconds:
            self.since[key] = float("inf")  # counted; not again until it clears
            return True
        return False

    async def count_not_ready(self) -> None:
        """Add the time since the last check, times the nodes NotReady then, to the report."""
        status, body = await self.kube.call(
            "GET", "/api/v1/nodes", query=[("labelSelector", "=".join(LABEL))]
        )
        if status != 200:
            return
        now, report = self.clock(), self.report
        if self.last_check is not None:
            report.not_ready_seconds += self.last_not_ready * (now - self.last_check)
        not_ready = [
            n
            for n in body.get("items") or []
            if not any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        ]
        self.last_check, self.last_not_ready = now, len(not_ready)
        # A node NotReady, cordoned or gone since it was freed is anyone's once it is back.
        present = {n["metadata"]["name"] for n in body.get("items") or []}
        cordoned = {
            n["metadata"]["name"]
            for n in body.get("items") or []
            if (n.get("spec") or {}).get("unschedulable")
        }
        unusable = {n["metadata"]["name"] for n in not_ready} | cordoned
        for node in list(self.freed):
            if node in unusable or node not in present:
                del self.freed[node]
        report.checks += 1
        report.checks_with_not_ready += bool(not_ready)
        report.most_not_ready = max(report.most_not_ready, len(not_ready))

    async def check(self) -> None:
        """One look at the cluster."""
        await self.count_not_ready()
        status, body = await self.kube.call("GET", f"/api/v1/namespaces/{NS}/pods")
        if status != 200:
            return
        pods = [p for p in body.get("items") or [] if p["spec"].get("schedulerName") == "custom-scheduler"]
        on_node: dict[str, list[str]] = defaultdict(list)
        gang_bound: dict[str, int] = Counter()
        gang_need: dict[str, int] = {}
        now = time.time()
        for p in pods:
            name, node = p["metadata"]["name"], p["spec"].get("nodeName")
            phase = (p.get("status") or {}).get("phase")
            annotations = p["metadata"].get("annotations") or {}
            gang = annotations.get(GROUP)
            if gang:
                gang_need[gang] = int(annotations.get(MIN, "1"))
            if node and phase not in ("Succeeded", "Failed"):
                on_node[node].append(name)
                self.bound.add(name)
                # A member on its way out (its gang preempted whole) started nothing: it may
                # linger, on a node the churn removed, long after the rest of its gang is gone.
                if gang and not p["metadata"].get("deletionTimestamp"):
                    gang_bound[gang] += 1
            if not node and not p["metadata"].get("deletionTimestamp"):
                created = p["metadata"]["creationTimestamp"]
                age = now - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
                scheduled = [
                    c for c in (p.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"
                ]
                said = any(c.get("message") for c in scheduled) or (p.get("status") or {}).get(
                    "nominatedNodeName"
                )
                if self._lasting(f"reason/{name}", not said and age > 15, 0):
                    self.report.violate("no_reason", f"{name} pending {age:.0f}s with no reason")
        for node, names in on_node.items():
            if self._lasting(f"node/{node}", len(names) > 1, 0):
                self.report.violate("two_on_a_node", f"{node}: {names}")
        await self.check_evictions(pods)
        self.check_reserving(pods, gang_bound, gang_need)
        for gang, count in gang_bound.items():
            partial = 0 < count < gang_need[gang] and gang not in self.churn.deleting_gangs
            if self._lasting(f"gang/{gang}", partial, 5):
                self.report.violate("partial_gang", f"{gang}: {count} of {gang_need[gang]} bound")
        self.report.bound = len(self.bound)

    async def check_evictions(self, pods: list[dict[str, Any]]) -> None:
        """SPEC 9.8 from outside: follow each node freed by a `Preempted` event to its next pod."""
        for p in pods:
            annotations = p["metadata"].get("annotations") or {}
            self.known[p["metadata"]["name"]] = (annotations.get(GROUP), int(p["spec"].get("priority") or 0))
        status, body = await self.kube.call(
            "GET", f"/api/v1/namespaces/{NS}/events", query=[("fieldSelector", "reason=Preempted")]
        )
        for event in body.get("items") or [] if status == 200 else []:
            uid = event["metadata"]["uid"]
            if uid in self.preempted:
                continue
            self.preempted.add(uid)
            victim = event["involvedObject"]["name"]
            # "Preempted by soak/<preemptor> on node <node>"
            words = str(event.get("message") or "").split()
            if len(words) < 6 or self.known.get(victim, (None, 0))[0] is not None:
                continue  # a gang member may go whole with its gang, its node unused (SPEC 9.3)
            preemptor, node = words[2].split("/", 1)[-1], words[-1]
            gang, priority = self.known.get(preemptor, (None, 0))
            self.freed[node] = (preemptor, gang, priority)
        alive = {p["metadata"]["name"] for p in pods}
        for p in pods:
            node, name = p["spec"].get("nodeName"), p["metadata"]["name"]
            finished = (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if not node or node not in self.freed or p["metadata"].get("deletionTimestamp") or finished:
                continue  # its victim, still going, or work done before it, is no answer
            preemptor, gang, priority = self.freed.pop(node)
            their_gang, their_priority = self.known.get(name, (None, 0))
            if name == preemptor or (gang is not None and their_gang == gang) or their_priority > priority:
                continue
            # The churn may delete a preemptor while its victim goes, or cordon, break or remove its
            # node, or free another first (work finishes): then it went elsewhere and its node is
            # anyone's. SPEC 9.8 is about passes in which nothing changes but victims leaving.
            placed = {p["metadata"]["name"]: p["spec"].get("nodeName") or _nominated(p) for p in pods}
            if placed.get(preemptor) in (None, "", node) and (
                preemptor in alive or (gang is not None and any(self.known[n][0] == gang for n in alive))
            ):
                self.report.violate("wasted", f"{node} freed for {preemptor} went to {name}")

    def check_reserving(
        self, pods: list[dict[str, Any]], gang_bound: dict[str, int], gang_need: dict[str, int]
    ) -> None:
        """SPEC 6a from outside: how long a gang waits from first saying it reserves to running."""
        now = self.clock()
        for p in pods:
            gang = (p["metadata"].get("annotations") or {}).get(GROUP)
            conditions = (p.get("status") or {}).get("conditions") or []
            message = next((c.get("message") or "" for c in conditions if c["type"] == "PodScheduled"), "")
            if gang and " reserves " in message and not p["spec"].get("nodeName"):
                self.reserving_since.setdefault(gang, now)
        for gang, since in list(self.reserving_since.items()):
            if gang_bound.get(gang, 0) >= gang_need.get(gang, 1):
                self.report.reserved_gangs += 1
                self.report.longest_reserving_s = max(self.report.longest_reserving_s, now - since)
                del self.reserving_since[gang]
            elif gang not in gang_need:
                del self.reserving_since[gang]  # deleted by the churn while it waited


def _nominated(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("nominatedNodeName") or "")


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def soak(plane: ControlPlane, seconds: float, *, seed: int = 1, log: Path | None = None) -> Report:
    """Churn for `seconds` against a scheduler process; the report of what the checker saw."""
    report = Report(seconds=seconds)
    log = log or Path(f"/tmp/custom-scheduler-soak-{seed}.log")
    async with connect(str(plane.kubeconfig), None) as kube:
        await kube.call(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        )
        for name, value in CLASSES.items():
            klass = {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            }
            await kube.call("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", klass)
        churn = Churn(kube, random.Random(seed), report)
        for _ in range(6):
            await churn.add_node()
        checker = Checker(kube, report, churn)
        with log.open("wb") as out:
            scheduler = await anyio.open_process(
                [
                    sys.executable, "-m", "custom_scheduler", "run", f"--kubeconfig={plane.kubeconfig}",
                    f"--namespace={NS}", f"--node-selector={LABEL[0]}={LABEL[1]}", "--interval=2",
                    "--log-format=json", "--health-port=0", "--reserve-after=10s",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + seconds
        next_progress = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                await churn.step()
                await checker.check()
                report.rss_kib.append(_rss_kib(scheduler.pid))
                if time.monotonic() >= next_progress:
                    left = deadline - time.monotonic()
                    print(
                        f"soak: {left:.0f}s left, {dict(report.violations) or 'no violations'}",
                        file=sys.stderr,
                    )
                    next_progress += 30
                await anyio.sleep(0.2)
        finally:
            scheduler.terminate()
            with anyio.fail_after(30):
                await scheduler.wait()
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                report.violate("log_error", line[:200])
            continue
        if entry.get("level") in ("error", "critical"):
            report.violate("log_error", line[:300])
    return report


def main() -> int:
    """`make soak`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with ControlPlane() as plane:
        report = anyio.run(lambda: soak(plane, args.minutes * 60, seed=args.seed))
    print(report.markdown())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
