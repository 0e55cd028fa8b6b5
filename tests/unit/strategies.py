"""Hypothesis strategies for generated clusters: `model.Snapshot` values built directly.

Every kind of node and pod SPEC talks about, in any mix: nodes Ready or NotReady, cordoned,
labelled for a node selector; pods of our scheduler and of another one; pending, bound but
Pending, Running, terminating, finished, pending-and-deleting; priorities from `spec.priority`,
from existing and missing classes and from a `globalDefault` class; `preemptionPolicy: Never` on
pods and classes; gangs with pending and occupying members, valid and invalid annotations;
nominations to free, terminating, occupied, NotReady and missing nodes.

Clusters stay what a real cluster could hold: our occupying pods are one per node unless the
caller asks for `double_booking` (then some nodes hold two, a robustness case only).

Each node and pod is first a bundle of choices (`NodeChoice`, `PodChoice`) read from a `Source`,
then `assemble` turns them into a consistent cluster. `snapshots` draws the choices as hypothesis
lists (so that a failure shrinks to the few nodes and pods it needs); `large_snapshots` and
`make_cluster` read them from a seeded `random.Random` (hundreds of nodes, a thousand pods: too
many choices for hypothesis to draw one by one).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from hypothesis import strategies as st

from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    GROUP_NAME,
    MIN_AVAILABLE,
    NO_CONSTRAINTS,
    PREEMPT_LOWER,
    PREEMPT_NEVER,
    Constraints,
    Expression,
    Node,
    Pod,
    PriorityClass,
    Snapshot,
    Taint,
    Term,
    Toleration,
)
from custom_scheduler.settings import Settings, parse_selector

T = TypeVar("T")

OURS = "custom-scheduler"
OTHER = "default-scheduler"
NAMESPACES = ("a", "a", "b", "c")
GANG_NAMES = ("g1", "g2", "g3")
PRIORITIES = (0, 10, 50, 100, 500, 1000)
# The classes a cluster may have (each is present or not). At most one globalDefault, as the API
# server enforces; the default class has no preemption policy of its own, because SPEC does not
# say whether a pod without a class takes the default class's policy (a SPEC gap, left alone).
CLASSES = (
    PriorityClass("low", 10),
    PriorityClass("mid", 100),
    PriorityClass("high", 1000),
    PriorityClass("polite", 500, preemption_policy=PREEMPT_NEVER),
    PriorityClass("eager", 100, preemption_policy=PREEMPT_LOWER),
    PriorityClass("default", 50, global_default=True),
)
CLASS_REFS = ("low", "mid", "high", "polite", "eager", "default", "missing")
# Invalid gang annotations (SPEC 4): min-available not an integer or < 1, min-available without
# group-name, empty group-name, a group-name over 63 characters, an unknown key under our prefix.
INVALID_ANNOTATIONS: tuple[dict[str, str], ...] = (
    {GROUP_NAME: "g" * 64},
    {ANNOTATION_PREFIX + "groupname": "g1"},
    {GROUP_NAME: "g2", ANNOTATION_PREFIX + "min-avaliable": "2"},
    {GROUP_NAME: "g1", MIN_AVAILABLE: "x"},
    {GROUP_NAME: "g2", MIN_AVAILABLE: "0"},
    {GROUP_NAME: "g1", MIN_AVAILABLE: "-1"},
    {GROUP_NAME: "g3", MIN_AVAILABLE: "1.5"},
    {GROUP_NAME: "g2", MIN_AVAILABLE: ""},
    {MIN_AVAILABLE: "2"},
    {GROUP_NAME: ""},
    {GROUP_NAME: "", MIN_AVAILABLE: "2"},
)

# Pod states, simplest first (hypothesis shrinks towards the first).
PENDING, RUNNING, BOUND, TERMINATING, FINISHED, PENDING_DELETING, GATED = (
    "pending",
    "running",
    "bound-pending",
    "terminating",
    "finished",
    "pending-deleting",
    "gated",  # pending with spec.schedulingGates
)
STATES = (PENDING, RUNNING, BOUND, TERMINATING, FINISHED, PENDING_DELETING, GATED)
STATE_WEIGHTS = (8, 5, 1, 2, 1, 1, 1)
ON_A_NODE = frozenset({RUNNING, BOUND, TERMINATING, FINISHED})


class Source(Protocol):
    """Where the builder's choices come from."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]; the simplest is `lo`."""
        ...

    def chance(self, percent: int) -> bool:
        """True with about `percent` % probability; the simplest is False."""
        ...

    def choice(self, options: Sequence[T], weights: Sequence[int] | None = None) -> T:
        """One of `options`; the simplest is the first."""
        ...


@dataclass
class DrawSource:
    """Choices drawn by hypothesis: they shrink."""

    draw: st.DrawFn

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return self.draw(st.integers(lo, hi))

    def chance(self, percent: int) -> bool:
        """True with about `percent` % probability."""
        return self.draw(st.integers(0, 19)) >= 20 - percent // 5

    def choice(self, options: Sequence[T], weights: Sequence[int] | None = None) -> T:
        """One of `options`, weighted when asked."""
        if weights is None:
            return self.draw(st.sampled_from(options))
        x = self.draw(st.integers(0, sum(weights) - 1))
        for option, weight in zip(options, weights, strict=True):
            if x < weight:
                return option
            x -= weight
        raise AssertionError("unreachable")


@dataclass
class RandomSource:
    """Choices from a seeded generator: fast for large clusters, but they do not shrink."""

    rng: random.Random

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return self.rng.randint(lo, hi)

    def chance(self, percent: int) -> bool:
        """True with about `percent` % probability."""
        return self.rng.randrange(100) >= 100 - percent

    def choice(self, options: Sequence[T], weights: Sequence[int] | None = None) -> T:
        """One of `options`, weighted when asked."""
        return self.rng.choices(options, weights=weights)[0]


def _annotations(src: Source, *, may_be_invalid: bool) -> dict[str, str]:
    """No gang, a valid gang (min-available missing or 1..4), or invalid annotations."""
    kind = src.choice(("none", "gang", "invalid"), (5, 4, 1 if may_be_invalid else 0))
    if kind == "none":
        return {}
    if kind == "invalid":
        return dict(src.choice(INVALID_ANNOTATIONS))
    out = {GROUP_NAME: src.choice(GANG_NAMES)}
    if src.chance(85):
        out[MIN_AVAILABLE] = str(src.integer(1, 4))
    return out


@dataclass(frozen=True)
class NodeChoice:
    """What was chosen for one node: its pool, gpu label, readiness, cordon, taint (one of
    TAINTS' keys, "" for none) and gpus allocatable (-1: the node lists no allocatable at all)."""

    pool: str
    gpu: bool
    ready: bool
    cordoned: bool
    taint: str = ""
    gpus: int = 0


GPU = "nvidia.com/gpu"
# Where a pod may run (SPEC 2, v2): what nodes and pods may carry, simplest first.
TAINTS = {
    "dedicated": Taint("dedicated", "ml", "NoSchedule"),
    "control-plane": Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
    "soft": Taint("spot", "yes", "PreferNoSchedule"),  # a preference only: ignored
    "noexecute": Taint("dedicated", "batch", "NoExecute"),
}
PLACEMENT = {
    "": NO_CONSTRAINTS,
    "pool-a": Constraints(node_selector=(("pool", "a"),)),
    "gpu-node": Constraints(affinity=(Term((Expression("gpu", "Exists"),)),)),
    "not-pool-a": Constraints(affinity=(Term((Expression("pool", "NotIn", ("a",)),)),)),
    "ml": Constraints(tolerations=(Toleration("dedicated", "Equal", "ml", "NoSchedule"),)),
    "anywhere": Constraints(tolerations=(Toleration(operator="Exists"),)),
    "4-gpus": Constraints(requests=((GPU, 4),)),
    "8-gpus-ml": Constraints(
        tolerations=(Toleration("dedicated", "Exists", "", ""),), requests=((GPU, 8), ("cpu", 1000))
    ),
    "cpu": Constraints(requests=(("cpu", 4000),)),
}
PLACEMENT_WEIGHTS = (20, 3, 2, 2, 2, 1, 2, 2, 2)


@dataclass(frozen=True)
class PodChoice:
    """What was chosen for one pod; `assemble` turns it into a Pod consistent with the others.

    `at` and `nominate_at` pick a node by index (modulo the number of nodes); `nominate` is
    "" (no nomination), "any" (any node), "terminating" (a node holding a terminating pod) or
    "missing" (a node that does not exist).
    """

    state: str
    ours: bool
    at: int
    double: bool
    namespace: str
    creation: int
    priority: int | None
    priority_class: str
    policy: str | None
    annotations: dict[str, str]
    nominate: str
    nominate_at: int
    placement: str = ""  # a key of PLACEMENT


def node_choice(src: Source) -> NodeChoice:
    """One node: pool a or b, sometimes a gpu label, NotReady, cordoned, tainted, with gpus."""
    return NodeChoice(
        src.choice(("a", "b")),
        src.chance(15),
        not src.chance(10),
        src.chance(10),
        src.choice(("", *TAINTS), (16, 2, 1, 1, 1)),
        src.choice((0, 4, 8, -1), (5, 2, 2, 1)),
    )


def pod_choice(src: Source, span: int = 16) -> PodChoice:
    """One pod: its state, scheduler, namespace, age, priority, policy, gang and nomination.

    Node indexes are drawn below `span` (taken modulo the number of nodes). Few and small choices,
    so that hypothesis, which stops after a few hundred successful shrinks, spends them on
    removing pods rather than on lowering numbers.
    """
    state = src.choice(STATES, STATE_WEIGHTS)
    nominate = (
        src.choice(("", "any", "terminating", "missing"), (14, 3, 2, 1))
        if state in (PENDING, PENDING_DELETING, GATED)
        else ""
    )
    return PodChoice(
        state=state,
        ours=not src.chance(10),
        at=src.integer(0, span - 1) if state in ON_A_NODE else 0,
        double=src.chance(30) if state in ON_A_NODE else False,
        namespace=src.choice(NAMESPACES),
        creation=src.integer(0, 7),
        priority=src.choice(PRIORITIES) if src.chance(50) else None,
        priority_class=src.choice(CLASS_REFS) if src.chance(50) else "",
        policy=src.choice((PREEMPT_NEVER, PREEMPT_LOWER)) if src.chance(15) else None,
        # Invalid annotations on pods that are not on a node: ours never bind them.
        annotations=_annotations(src, may_be_invalid=state not in ON_A_NODE),
        nominate=nominate,
        nominate_at=src.integer(0, span - 1) if nominate else 0,
        placement=src.choice(tuple(PLACEMENT), PLACEMENT_WEIGHTS),
    )


def assemble(
    node_choices: Sequence[NodeChoice],
    pod_choices: Sequence[PodChoice],
    classes: Sequence[PriorityClass],
    *,
    double_booking: bool = False,
) -> Snapshot:
    """The cluster these choices describe, kept to what a real cluster could hold.

    Names: nodes `n000`...; pods `p0000`... (unique across namespaces, so unique in each), uids
    `uid-<i>`. Creation times are small integers, so ties (broken by namespace and name) are
    common. Our occupying pods go to the first node from their chosen index that holds none of
    ours (no such node: the pod stays pending) unless `double_booking` and the pod's `double`
    say otherwise. `now` is 0.0 (unknown): no terminating pod counts as stuck, a notion SPEC
    does not have.
    """
    nodes = [
        Node(
            f"n{i:03d}",
            labels={"pool": c.pool} | ({"gpu": "yes"} if c.gpu else {}),
            ready=c.ready,
            unschedulable=c.cordoned,
            taints=(TAINTS[c.taint],) if c.taint else (),
            allocatable={} if c.gpus < 0 else {"cpu": 8000, "pods": 6} | ({GPU: c.gpus} if c.gpus else {}),
        )
        for i, c in enumerate(node_choices)
    ]
    names = [n.name for n in nodes]
    occupied: set[str] = set()
    pods: list[Pod] = []
    for i, c in enumerate(pod_choices):
        state, node = c.state, ""
        if state in ON_A_NODE and names:
            first = c.at % len(names)
            order = names[first:] + names[:first]
            if not c.ours or state == FINISHED or (double_booking and c.double):
                node = order[0]
            else:
                node = next((n for n in order if n not in occupied), "")
        if state in ON_A_NODE and not node:
            state = PENDING
        if c.ours and node and state != FINISHED:
            occupied.add(node)
        phase = {
            RUNNING: "Running",
            TERMINATING: "Pending" if c.creation % 4 == 1 else "Running",  # some never started
            FINISHED: "Succeeded" if i % 2 else "Failed",
        }
        pods.append(
            Pod(
                namespace=c.namespace,
                name=f"p{i:04d}",
                uid=f"uid-{i}",
                scheduler_name=OURS if c.ours else OTHER,
                phase=phase.get(state, "Pending"),
                node_name=node,
                deleting=state in {TERMINATING, PENDING_DELETING},
                deletion_time=100.0 if state in {TERMINATING, PENDING_DELETING} else 0.0,
                gated=state == GATED,
                creation=float(c.creation),
                priority=c.priority,
                priority_class=c.priority_class,
                preemption_policy=c.policy,
                annotations=c.annotations if state not in ON_A_NODE or c.annotations.get(GROUP_NAME) else {},
                constraints=PLACEMENT[c.placement],
            )
        )
    # Nominations: to a node holding a terminating pod (the usual case: a preemptor waiting for
    # its victim), to any node (free, occupied, NotReady, cordoned), or to one that does not exist.
    terminating = sorted({p.node_name for p in pods if p.deleting and p.node_name})
    for i, (c, pod) in enumerate(zip(pod_choices, pods, strict=True)):
        if pod.node_name or not c.nominate:
            continue
        if c.nominate == "terminating" and terminating:
            target = terminating[c.nominate_at % len(terminating)]
        elif c.nominate == "missing" or not names:
            target = "gone"
        else:
            target = names[c.nominate_at % len(names)]
        pods[i] = replace(pod, nominated_node=target)
    return Snapshot(tuple(nodes), tuple(pods), tuple(classes))


def build_snapshot(src: Source, n_nodes: int, n_pods: int, *, double_booking: bool = False) -> Snapshot:
    """A cluster of `n_nodes` nodes and `n_pods` pods, every choice read from `src`."""
    node_choices = [node_choice(src) for _ in range(n_nodes)]
    classes = [c for c in CLASSES if not src.chance(20)]
    pod_choices = [pod_choice(src, max(n_nodes, 1)) for _ in range(n_pods)]
    return assemble(node_choices, pod_choices, classes, double_booking=double_booking)


def double_booked(snapshot: Snapshot, scheduler_name: str = OURS) -> set[str]:
    """Nodes holding more than one occupying pod of `scheduler_name` (ignores --namespace)."""
    seen: dict[str, int] = {}
    for p in snapshot.pods:
        if p.scheduler_name == scheduler_name and p.node_name and p.phase not in ("Succeeded", "Failed"):
            seen[p.node_name] = seen.get(p.node_name, 0) + 1
    return {n for n, k in seen.items() if k > 1}


@st.composite
def _node_choices(draw: st.DrawFn) -> NodeChoice:
    return node_choice(DrawSource(draw))


@st.composite
def _pod_choices(draw: st.DrawFn) -> PodChoice:
    return pod_choice(DrawSource(draw))


@st.composite
def snapshots(
    draw: st.DrawFn, *, max_nodes: int = 16, max_pods: int = 60, double_booking: bool = False
) -> Snapshot:
    """A generated cluster of up to `max_nodes` nodes and `max_pods` pods; it shrinks well.

    Nodes and pods are hypothesis lists, so that a failing cluster loses the nodes and pods its
    failure does not need. Pods come as three lists (each of up to a third of `max_pods`): one
    list would average about five pods, too few to crowd the nodes. With `double_booking`, about
    one cluster in five may have nodes holding two of our pods.
    """
    nodes = draw(st.lists(_node_choices(), max_size=max_nodes))
    classes = [c for c in CLASSES if draw(st.integers(0, 4)) != 4]
    doubled = double_booking and draw(st.integers(0, 4)) == 4
    pods = [p for _ in range(3) for p in draw(st.lists(_pod_choices(), max_size=max_pods // 3))]
    return assemble(nodes, pods, classes, double_booking=doubled)


@st.composite
def large_snapshots(
    draw: st.DrawFn, *, max_nodes: int = 300, max_pods: int = 1000, double_booking: bool = False
) -> Snapshot:
    """A large cluster (up to 300 nodes and 1,000 pods by default) from a drawn seed.

    Too many choices for hypothesis to draw one by one, so it does not shrink: a failure here
    reports its seed, to be replayed with `make_cluster`.
    """
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = random.Random(seed)
    return make_cluster(
        rng,
        rng.randint(1, max_nodes),
        rng.randint(0, max_pods),
        double_booking=double_booking and rng.random() < 0.2,
    )


SCOPES = (
    Settings(),
    Settings(namespace="a"),
    Settings(node_selector=parse_selector("pool=a")),
    Settings(namespace="b", node_selector=parse_selector("pool in (a,b),!gpu")),
)


def scopes() -> st.SearchStrategy[Settings]:
    """The settings a pass runs with: all namespaces and nodes (the simplest), or narrowed."""
    return st.sampled_from(SCOPES)


def make_cluster(rng: random.Random, n_nodes: int, n_pods: int, *, double_booking: bool = False) -> Snapshot:
    """A cluster from a seeded generator (for benchmarks and soak-style loops)."""
    return build_snapshot(RandomSource(rng), n_nodes, n_pods, double_booking=double_booking)


def clusters(
    *, max_nodes: int = 16, max_pods: int = 60, double_booking: bool = False
) -> st.SearchStrategy[Snapshot]:
    """`snapshots` under its older name."""
    return snapshots(max_nodes=max_nodes, max_pods=max_pods, double_booking=double_booking)


def describe(snapshot: Snapshot) -> str:
    """A compact, readable listing of a snapshot: one line per class, node and pod, defaults left out."""
    lines = [
        f"class {c.name}={c.value}"
        + (" globalDefault" if c.global_default else "")
        + (f" policy={c.preemption_policy}" if c.preemption_policy else "")
        for c in snapshot.priority_classes
    ]
    for n in snapshot.nodes:
        flags = ("" if n.ready else " NotReady") + (" cordoned" if n.unschedulable else "")
        flags += "".join(f" taint={t.key}={t.value}:{t.effect}" for t in n.taints)
        flags += f" allocatable={dict(n.allocatable)}" if n.allocatable else ""
        lines.append(f"node {n.name} {dict(n.labels)}{flags}")
    for p in snapshot.pods:
        parts = [f"pod {p.key}", p.phase]
        if p.scheduler_name != OURS:
            parts.append(f"scheduler={p.scheduler_name}")
        if p.node_name:
            parts.append(f"on={p.node_name}")
        if p.deleting:
            parts.append("deleting")
        if p.nominated_node:
            parts.append(f"nominated={p.nominated_node}")
        if p.priority is not None:
            parts.append(f"priority={p.priority}")
        if p.priority_class:
            parts.append(f"class={p.priority_class}")
        if p.preemption_policy:
            parts.append(f"policy={p.preemption_policy}")
        parts.append(f"created={p.creation:g}")
        for k, v in p.annotations.items():
            parts.append(f"{k.rsplit('/', 1)[-1]}={v!r}")
        if p.gated:
            parts.append("gated")
        placement = next((name for name, c in PLACEMENT.items() if c == p.constraints), None)
        if placement:
            parts.append(f"placement={placement}")
        lines.append(" ".join(parts))
    return "\n".join(lines)
