"""Pass after pass on a simulated clock: the controller's side of `plan`, for tests that span passes.

A `Driver` holds a cluster (nodes, pods, priority classes) and a clock. Each `step` plans one pass
on a snapshot taken at the current time, applies the plan as the shell would, then moves the clock
on by one tick and lets the world happen:

- a bind places the pod and starts it (`nodeName` set, phase Running, nomination gone);
- a nomination is written to `status.nominatedNodeName`; a pending pod the plan does not nominate
  loses its nomination (the shell clears it: README "Notes on choices");
- the reason a pod waits (or its nomination's message) is written to its `PodScheduled` condition;
- an evicted pod gets its deletionTimestamp (now + its grace period) and vanishes once that passes;
- running work finishes after its lifetime: phase Succeeded for one tick, then the pod is gone;
- pods arrive on a schedule, created at their arrival time.

It reads nothing of the planner but `plan` and the plan it returns. A test tool: small on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from custom_scheduler.model import Node, Plan, Pod, PriorityClass, Snapshot
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings

FINISHED = ("Succeeded", "Failed")

Planner = Callable[[Snapshot, Settings], Plan]


def planner(snapshot: Snapshot, settings: Settings) -> Plan:
    """The planner under test."""
    return plan(snapshot, settings=settings)


@dataclass(frozen=True)
class Arrival:
    """A pod created at `at` (its `creation` is set to it) that runs `lifetime` seconds once bound."""

    at: float
    pod: Pod
    lifetime: float | None = None  # None: it runs until evicted


@dataclass(frozen=True)
class Step:
    """One pass: what it saw and what it decided."""

    snapshot: Snapshot
    plan: Plan

    @property
    def now(self) -> float:
        """The time of the pass."""
        return self.snapshot.now


@dataclass
class Driver:
    """A cluster driven by the planner, one pass per tick of a simulated clock.

    `lifetimes` and `grace` are by pod key (`namespace/name`); a running pod without a lifetime
    runs until evicted, one without a grace period takes `default_grace` seconds to leave. The
    running pods of the starting cluster started at `now`. `planner` is the one under test unless a
    test of the checkers puts a model of SPEC in its place.
    """

    nodes: tuple[Node, ...]
    pods: dict[str, Pod]
    settings: Settings = field(default_factory=Settings)
    classes: tuple[PriorityClass, ...] = ()
    now: float = 0.0
    tick: float = 5.0
    lifetimes: dict[str, float] = field(default_factory=dict)
    grace: dict[str, float] = field(default_factory=dict)
    default_grace: float = 3.0
    arrivals: list[Arrival] = field(default_factory=list)
    history: list[Step] = field(default_factory=list)
    finish_at: dict[str, float] = field(default_factory=dict)
    planner: Planner = planner

    @classmethod
    def of(
        cls,
        snapshot: Snapshot,
        *,
        settings: Settings | None = None,
        tick: float = 5.0,
        lifetimes: Mapping[str, float] | None = None,
        grace: Mapping[str, float] | None = None,
        default_grace: float = 3.0,
        arrivals: Iterable[Arrival] = (),
        planner: Planner = planner,
    ) -> Driver:
        """A driver starting from a snapshot, its clock at `snapshot.now`."""
        driver = cls(
            nodes=snapshot.nodes,
            pods={p.key: p for p in snapshot.pods},
            settings=settings or Settings(),
            classes=snapshot.priority_classes,
            now=snapshot.now,
            tick=tick,
            lifetimes=dict(lifetimes or {}),
            grace=dict(grace or {}),
            default_grace=default_grace,
            arrivals=sorted(arrivals, key=lambda a: a.at),
            planner=planner,
        )
        for key, pod in driver.pods.items():
            if _running(pod) and key in driver.lifetimes:
                driver.finish_at[key] = driver.now + driver.lifetimes[key]
        driver._arrive()
        return driver

    def snapshot(self) -> Snapshot:
        """The cluster as a pass sees it now."""
        return Snapshot(self.nodes, tuple(self.pods.values()), self.classes, now=self.now)

    def step(self) -> Step:
        """Plan one pass, apply it, and move the clock on by one tick."""
        snapshot = self.snapshot()
        step = Step(snapshot, self.planner(snapshot, self.settings))
        self.history.append(step)
        self._apply(step.plan)
        self._advance()
        return step

    def run(self, passes: int) -> list[Step]:
        """`passes` passes; the steps they made."""
        return [self.step() for _ in range(passes)]

    def run_until(self, done: Callable[[Step], bool], limit: int) -> list[Step]:
        """Passes until one of them is `done` (included) or `limit` passes have run."""
        steps = []
        for _ in range(limit):
            steps.append(self.step())
            if done(steps[-1]):
                break
        return steps

    def _apply(self, result: Plan) -> None:
        pods, now = self.pods, self.now
        for b in result.binds:
            pods[b.pod] = replace(
                pods[b.pod],
                node_name=b.node,
                phase="Running",
                nominated_node="",
                scheduled_reason="",
                scheduled_message="",
            )
            if b.pod in self.lifetimes:
                self.finish_at[b.pod] = now + self.lifetimes[b.pod]
        for n in result.nominations:
            pods[n.pod] = replace(
                pods[n.pod],
                nominated_node=n.node,
                scheduled_reason="Unschedulable",
                scheduled_message=n.message,
            )
        for u in result.unschedulable:
            pods[u.pod] = replace(pods[u.pod], scheduled_reason="Unschedulable", scheduled_message=u.reason)
        placed = {b.pod for b in result.binds} | {n.pod for n in result.nominations}
        for key, pod in pods.items():
            if pod.nominated_node and not pod.node_name and key not in placed and self._managed(pod):
                pods[key] = replace(pod, nominated_node="")  # the shell clears it
        for e in result.evictions:
            victim = pods[e.pod]
            grace = self.grace.get(e.pod, self.default_grace)
            pods[e.pod] = replace(victim, deleting=True, deletion_time=now + grace)

    def _managed(self, pod: Pod) -> bool:
        scope = self.settings
        return pod.scheduler_name == scope.scheduler_name and scope.namespace in (None, pod.namespace)

    def _advance(self) -> None:
        self.now += self.tick
        for key, pod in list(self.pods.items()):
            if pod.phase in FINISHED or (pod.deleting and pod.deletion_time <= self.now):
                del self.pods[key]
            elif _running(pod) and self.finish_at.get(key, math.inf) <= self.now:
                self.pods[key] = replace(pod, phase="Succeeded")
        self._arrive()

    def _arrive(self) -> None:
        while self.arrivals and self.arrivals[0].at <= self.now:
            arrival = self.arrivals.pop(0)
            pod = replace(arrival.pod, creation=arrival.at)
            self.pods[pod.key] = pod
            if arrival.lifetime is not None:
                self.lifetimes[pod.key] = arrival.lifetime

    def transcript(self, last: int = 12) -> str:
        """The last passes, one line per decision: for a failing test's message."""
        lines = []
        for step in self.history[-last:]:
            p = step.plan
            lines.append(f"pass at t={step.now:g}:")
            lines += [f"  bind {b.pod} -> {b.node}" for b in p.binds]
            lines += [f"  nominate {n.pod} -> {n.node}" for n in p.nominations]
            lines += [f"  evict {e.pod} from {e.node} for {e.preemptor}" for e in p.evictions]
            waiting: dict[str, list[str]] = {}
            for u in p.unschedulable:
                waiting.setdefault(u.reason, []).append(u.pod)
            lines += [f"  waits {', '.join(pods)}: {reason}" for reason, pods in waiting.items()]
        return "\n".join(lines)


def _running(pod: Pod) -> bool:
    return bool(pod.node_name) and pod.phase not in FINISHED and not pod.deleting
