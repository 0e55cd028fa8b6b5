"""The planner, rule by rule: one named case per rule of SPEC sections 2 to 7, each on the whole Plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    GROUP_NAME,
    MIN_AVAILABLE,
    Bind,
    Constraints,
    Evict,
    Nominate,
    Plan,
    Snapshot,
    Taint,
    Toleration,
    Unschedulable,
)
from custom_scheduler.planner import plan
from custom_scheduler.settings import Settings, parse_selector
from tests.unit.builders import (
    bind,
    evict,
    node,
    nominate,
    pclass,
    pod,
    snap,
    unsched,
)

HIGHER = "hold a pod of equal or higher priority"
GPU = "nvidia.com/gpu"
CONTROL_PLANE = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
TAINTED = "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
ANY = Toleration(operator="Exists")
POOL_A = Constraints(node_selector=(("pool", "a"),))
POOL_B = Constraints(node_selector=(("pool", "b"),))
GPUS = Constraints(requests=((GPU, 8),))
EIGHT_GPUS = Constraints(node_selector=(("pool", "gpu"),), requests=((GPU, 8),))
BAD_MIN = "is invalid: it must be a positive integer of at most 9 digits"


def avail(total: int, *parts: str) -> str:
    """kube-scheduler's sentence: `0/5 nodes are available: 5 node(s) hold ....`"""
    return f"0/{total} nodes are available: {', '.join(parts)}."


@dataclass(frozen=True)
class Case:
    name: str
    snapshot: Snapshot
    expected: Plan
    settings: Settings = field(default_factory=Settings)


def P(
    binds: Sequence[Bind] = (),
    nominations: Sequence[Nominate] = (),
    evictions: Sequence[Evict] = (),
    unschedulable: Sequence[Unschedulable] = (),
) -> Plan:
    """A Plan from lists in any order (the planner sorts them by pod)."""
    return Plan(
        binds=tuple(sorted(binds, key=lambda b: b.pod)),
        nominations=tuple(sorted(nominations, key=lambda n: n.pod)),
        evictions=tuple(sorted(evictions, key=lambda e: e.pod)),
        unschedulable=tuple(sorted(unschedulable, key=lambda u: u.pod)),
    )


TWO = (node("n1"), node("n2"))

CASES = [
    # --- SPEC section 11 ------------------------------------------------------------------------
    Case(
        "SPEC 11, demo one: a low-priority gang of two next to a high pod waits, with a reason",
        snap(
            *TWO,
            pclass("high-priority", 1000000),
            pclass("low-priority", 10),
            pod("test-pod-high-pri", on="n1", cls="high-priority"),
            pod("job-two-lowpri-a", cls="low-priority", gang="job-two-lowpri", min_available=2, t=1),
            pod("job-two-lowpri-b", cls="low-priority", gang="job-two-lowpri", min_available=2, t=1),
        ),
        P(
            unschedulable=[
                unsched(p, f"gang default/job-two-lowpri needs 2 nodes, 1 can be had: 1 node(s) {HIGHER}.")
                for p in ("job-two-lowpri-a", "job-two-lowpri-b")
            ]
        ),
    ),
    Case(
        "SPEC 11, demo two: a high-priority gang of two evicts the low pod; both nominated",
        snap(
            *TWO,
            pclass("high-priority", 1000000),
            pclass("low-priority", 10),
            pod("test-pod-low-pri", on="n1", cls="low-priority"),
            pod("job-two-highpri-a", cls="high-priority", gang="job-two-highpri", min_available=2, t=1),
            pod("job-two-highpri-b", cls="high-priority", gang="job-two-highpri", min_available=2, t=1),
        ),
        P(
            nominations=[
                nominate("job-two-highpri-a", "n2"),
                nominate("job-two-highpri-b", "n1", waiting_for=("test-pod-low-pri",)),
            ],
            evictions=[evict("test-pod-low-pri", "n1", by="job-two-highpri-b")],
        ),
    ),
    Case(
        "SPEC 11, demo two, next pass: the low pod is gone, both are bound together",
        snap(
            *TWO,
            pclass("high-priority", 1000000),
            pod(
                "job-two-highpri-a",
                cls="high-priority",
                gang="job-two-highpri",
                min_available=2,
                nominated="n2",
            ),
            pod(
                "job-two-highpri-b",
                cls="high-priority",
                gang="job-two-highpri",
                min_available=2,
                nominated="n1",
            ),
        ),
        P(binds=[bind("job-two-highpri-a", "n2"), bind("job-two-highpri-b", "n1")]),
    ),
    # --- Scope and occupancy (SPEC 2) ---------------------------------------------------------
    Case(
        "a pending pod is bound to the first free node by name",
        snap(node("n2"), node("n1"), pod("a")),
        P(binds=[bind("a", "n1")]),
    ),
    Case(
        "pods of other schedulers are never planned and never occupy a node",
        snap(
            *TWO,
            pod("sys", on="n1", scheduler="default-scheduler"),
            pod("other", scheduler="x"),
            pod("a"),
        ),
        P(binds=[bind("a", "n1")]),
    ),
    Case(
        "--scheduler-name picks which pods are ours",
        snap(*TWO, pod("mine", scheduler="team-a"), pod("theirs"), pod("x", on="n1")),
        P(binds=[bind("mine", "n1")]),
        Settings(scheduler_name="team-a"),
    ),
    Case(
        "--namespace restricts the scheduler to one namespace",
        snap(*TWO, pod("a", ns="team"), pod("b", ns="other"), pod("c", on="n1", ns="other")),
        P(binds=[bind("a", "n1", ns="team")]),
        Settings(namespace="team"),
    ),
    Case(
        "a pod bound but not yet running occupies its node",
        snap(*TWO, pod("b", on="n1", phase="Pending"), pod("a")),
        P(binds=[bind("a", "n2")]),
    ),
    Case(
        "a terminating pod occupies its node until it is gone",
        snap(node("n1"), pod("t", on="n1", deleting=True), pod("a")),
        P(unschedulable=[unsched("a", avail(1, "1 node(s) hold a terminating pod"))]),
    ),
    Case(
        "finished pods do not occupy their nodes",
        snap(
            *TWO,
            pod("s", on="n1", phase="Succeeded"),
            pod("f", on="n2", phase="Failed"),
            pod("a"),
        ),
        P(binds=[bind("a", "n1")]),
    ),
    Case(
        "a pending pod being deleted is not planned",
        snap(*TWO, pod("gone", deleting=True), pod("a", t=1)),
        P(binds=[bind("a", "n1")]),
    ),
    Case(
        "a pod already bound is never bound again",
        snap(*TWO, pod("b", on="n2")),
        P(),
    ),
    Case(
        "NotReady and cordoned nodes are not eligible",
        snap(node("n1", ready=False), node("n2", cordoned=True), node("n3"), pod("a"), pod("b", t=1)),
        P(
            binds=[bind("a", "n3")],
            unschedulable=[
                unsched(
                    "b",
                    avail(
                        3, "1 node(s) were not ready", "1 node(s) were unschedulable", f"1 node(s) {HIGHER}"
                    ),
                )
            ],
        ),
    ),
    Case(
        "--node-selector limits the nodes used",
        snap(node("n1"), node("n2", labels={"pool": "gpu"}), pod("a"), pod("b", t=1)),
        P(
            binds=[bind("a", "n2")],
            unschedulable=[
                unsched(
                    "b",
                    avail(2, "1 node(s) didn't match the scheduler's node selector", f"1 node(s) {HIGHER}"),
                )
            ],
        ),
        Settings(node_selector=parse_selector("pool=gpu")),
    ),
    Case(
        "with no nodes at all the pod waits and says so, in kube-scheduler's words",
        snap(pod("a")),
        P(unschedulable=[unsched("a", "no nodes available to schedule pods")]),
    ),
    Case(
        "with no nodes at all a gang says what it needs, and that there are none",
        snap(pod("g-0", gang="g", min_available=2), pod("g-1", gang="g", min_available=2)),
        P(
            unschedulable=[
                unsched(p, "gang default/g needs 2 nodes: no nodes available to schedule pods")
                for p in ("g-0", "g-1")
            ]
        ),
    ),
    # --- Priority (SPEC 3) -----------------------------------------------------------------------
    Case(
        "spec.priority wins over the class named",
        snap(
            node("n1"),
            pclass("high", 1000),
            pod("a", priority=5, cls="high"),
            pod("b", priority=10, t=1),
        ),
        P(binds=[bind("b", "n1")], unschedulable=[unsched("a", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "without spec.priority the named class gives the priority",
        snap(node("n1"), pclass("high", 1000), pod("a", priority=10), pod("b", cls="high", t=1)),
        P(binds=[bind("b", "n1")], unschedulable=[unsched("a", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "without spec.priority or a known class, the global default applies",
        snap(
            node("n1"),
            pclass("dflt", 50, default=True),
            pod("a", priority=10),
            pod("b", cls="nope", t=1),
        ),
        P(binds=[bind("b", "n1")], unschedulable=[unsched("a", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "without any of those the priority is 0",
        snap(node("n1"), pod("a", priority=-1), pod("b", t=1)),
        P(binds=[bind("b", "n1")], unschedulable=[unsched("a", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "preemptionPolicy Never in the spec: the pod waits instead of evicting",
        snap(node("n1"), pod("lo", on="n1", priority=1), pod("hi", priority=10, policy="Never")),
        P(
            unschedulable=[
                unsched(
                    "hi", avail(1, "1 node(s) hold a pod of lower priority, and preemptionPolicy is Never")
                )
            ]
        ),
    ),
    Case(
        "preemptionPolicy Never from the class",
        snap(
            node("n1"),
            pclass("polite", 10, policy="Never"),
            pod("lo", on="n1", priority=1),
            pod("hi", cls="polite"),
        ),
        P(
            unschedulable=[
                unsched(
                    "hi", avail(1, "1 node(s) hold a pod of lower priority, and preemptionPolicy is Never")
                )
            ]
        ),
    ),
    Case(
        "a pod that never preempts can still be a victim",
        snap(node("n1"), pod("lo", on="n1", priority=1), pod("hi", priority=10)),
        P(nominations=[nominate("hi", "n1", waiting_for=("lo",))], evictions=[evict("lo", "n1", by="hi")]),
    ),
    # --- Ordering and backfill (SPEC 5) ----------------------------------------------------------
    Case(
        "higher priority goes first",
        snap(node("n1"), pod("lo", priority=1), pod("hi", priority=2, t=5)),
        P(binds=[bind("hi", "n1")], unschedulable=[unsched("lo", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "at equal priority the older pod goes first",
        snap(node("n1"), pod("a", t=2), pod("b", t=1)),
        P(binds=[bind("b", "n1")], unschedulable=[unsched("a", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "at equal priority and age: namespace, then name",
        snap(node("n1"), node("n2"), pod("b", ns="a"), pod("a", ns="b"), pod("a", ns="a")),
        P(
            binds=[bind("a", "n1", ns="a"), bind("b", "n2", ns="a")],
            unschedulable=[unsched("a", avail(2, f"2 node(s) {HIGHER}"), ns="b")],
        ),
    ),
    Case(
        "a gang is ordered by its oldest pending member",
        snap(
            node("n1"),
            node("n2"),
            pod("solo", t=2),
            pod("g-1", t=1, gang="g", min_available=2),
            pod("g-2", t=3, gang="g", min_available=2),
        ),
        P(
            binds=[bind("g-1", "n1"), bind("g-2", "n2")],
            unschedulable=[unsched("solo", avail(2, f"2 node(s) {HIGHER}"))],
        ),
    ),
    Case(
        "inside a gang, members go by age then name",
        snap(
            node("n1"),
            node("n2"),
            pod("g-c", t=1, gang="g"),
            pod("g-b", t=2, gang="g"),
            pod("g-a", t=2, gang="g"),
        ),
        P(
            binds=[bind("g-c", "n1"), bind("g-a", "n2")],
            unschedulable=[
                unsched(
                    "g-b",
                    avail(
                        2,
                        f"2 node(s) {HIGHER}",
                    ),
                )
            ],
        ),
    ),
    Case(
        "a unit that cannot be placed takes no nodes: later units backfill",
        snap(
            node("n1"),
            pod("g-1", priority=10, gang="g", min_available=2),
            pod("g-2", priority=10, gang="g", min_available=2),
            pod("small", priority=1),
        ),
        P(
            binds=[bind("small", "n1")],
            unschedulable=[
                unsched("g-1", "gang default/g needs 2 nodes, 1 can be had"),
                unsched("g-2", "gang default/g needs 2 nodes, 1 can be had"),
            ],
        ),
    ),
    # --- Gangs (SPEC 4) --------------------------------------------------------------------------
    Case(
        "a gang is (namespace, group-name): the same name in two namespaces is two gangs",
        snap(
            node("n1"),
            node("n2"),
            pod("a", ns="x", gang="g", min_available=2),
            pod("b", ns="y", gang="g", min_available=2, t=1),
        ),
        P(
            unschedulable=[
                unsched("a", "gang x/g: 1 of 2 required members exist", ns="x"),
                unsched("b", "gang y/g: 1 of 2 required members exist", ns="y"),
            ]
        ),
    ),
    Case(
        "a pod named like a gang is not its member",
        snap(*TWO, pod("g"), pod("m", gang="g", min_available=2, t=1)),
        P(
            binds=[bind("g", "n1")],
            unschedulable=[unsched("m", "gang default/g: 1 of 2 required members exist")],
        ),
    ),
    Case(
        "a gang takes the highest priority of its members (donation) for ordering",
        snap(
            node("n1"),
            node("n2"),
            pod("solo", priority=50),
            pod("g-lo", priority=1, gang="g", min_available=2, t=1),
            pod("g-hi", priority=100, gang="g", min_available=2, t=1),
        ),
        P(
            binds=[bind("g-hi", "n1"), bind("g-lo", "n2")],
            unschedulable=[unsched("solo", avail(2, f"2 node(s) {HIGHER}"))],
        ),
    ),
    Case(
        "a running member is protected by its gang's priority",
        snap(
            node("n1"),
            node("n2"),
            pod("g-run", on="n1", priority=1, gang="g"),
            pod("g-run2", on="n2", priority=1, gang="g"),
            pod("g-new", priority=100, gang="g"),
            pod("mid", priority=50),
        ),
        P(
            unschedulable=[
                unsched("g-new", avail(2, f"2 node(s) {HIGHER}")),
                unsched("mid", avail(2, f"2 node(s) {HIGHER}")),
            ]
        ),
    ),
    Case(
        "min-available is the largest over pending members",
        snap(
            *TWO,
            pod("g-1", gang="g", min_available=1),
            pod("g-2", gang="g", min_available=3),
        ),
        P(
            unschedulable=[
                unsched("g-1", "gang default/g: 2 of 3 required members exist"),
                unsched("g-2", "gang default/g: 2 of 3 required members exist"),
            ]
        ),
    ),
    Case(
        "all or nothing: a gang that does not fit places nobody",
        snap(
            *TWO,
            pod("g-1", gang="g", min_available=3),
            pod("g-2", gang="g", min_available=3),
            pod("g-3", gang="g", min_available=3),
        ),
        P(
            unschedulable=[
                unsched(p, "gang default/g needs 3 nodes, 2 can be had") for p in ("g-1", "g-2", "g-3")
            ]
        ),
    ),
    Case(
        "a gang waits for quorum while members are still being created",
        snap(
            *TWO,
            node("n3"),
            pod("t-0", gang="train", min_available=3),
            pod("t-1", gang="train", min_available=3),
        ),
        P(
            unschedulable=[
                unsched("t-0", "gang default/train: 2 of 3 required members exist"),
                unsched("t-1", "gang default/train: 2 of 3 required members exist"),
            ]
        ),
    ),
    Case(
        "running members count toward min-available",
        snap(
            node("n1"),
            node("n2"),
            node("n3"),
            pod("g-0", on="n1", gang="g", min_available=3),
            pod("g-1", gang="g", min_available=3),
            pod("g-2", gang="g", min_available=3),
        ),
        P(binds=[bind("g-1", "n2"), bind("g-2", "n3")]),
    ),
    Case(
        "once min-available is met, every further member that fits is placed too",
        snap(
            *TWO,
            node("n3"),
            pod("g-1", gang="g", min_available=2),
            pod("g-2", gang="g", min_available=2),
            pod("g-3", gang="g", min_available=2),
        ),
        P(binds=[bind("g-1", "n1"), bind("g-2", "n2"), bind("g-3", "n3")]),
    ),
    Case(
        "members beyond min-available take free nodes only; they do not preempt",
        snap(
            *TWO,
            pod("lo", on="n2", priority=1),
            pod("g-1", priority=10, gang="g"),
            pod("g-2", priority=10, gang="g", t=1),
        ),
        P(
            binds=[bind("g-1", "n1")],
            unschedulable=[
                unsched(
                    "g-2",
                    avail(
                        2,
                        f"1 node(s) {HIGHER}",
                        "1 node(s) hold a pod of lower priority, "
                        "and members beyond the gang's min-available do not preempt",
                    ),
                )
            ],
        ),
    ),
    Case(
        "invalid min-available (not an integer) is that pod's error only",
        snap(*TWO, pod("bad", gang="g", min_available="abc"), pod("ok", t=1)),
        P(
            binds=[bind("ok", "n1")],
            unschedulable=[
                unsched(
                    "bad",
                    f'annotation {MIN_AVAILABLE}="abc" {BAD_MIN}',
                    invalid=True,
                )
            ],
        ),
    ),
    Case(
        "invalid min-available below 1",
        snap(*TWO, pod("zero", gang="g", min_available="0"), pod("neg", gang="g", min_available="-2")),
        P(
            unschedulable=[
                unsched(
                    "neg",
                    f'annotation {MIN_AVAILABLE}="-2" {BAD_MIN}',
                    invalid=True,
                ),
                unsched(
                    "zero",
                    f'annotation {MIN_AVAILABLE}="0" {BAD_MIN}',
                    invalid=True,
                ),
            ]
        ),
    ),
    Case(
        "min-available without group-name is invalid",
        snap(*TWO, pod("lonely", min_available=2)),
        P(
            unschedulable=[
                unsched(
                    "lonely", f'annotation {MIN_AVAILABLE}="2" is invalid without {GROUP_NAME}', invalid=True
                )
            ]
        ),
    ),
    Case(
        "an empty group-name is invalid",
        snap(*TWO, pod("blank", gang="  ")),
        P(
            unschedulable=[
                unsched(
                    "blank", f'annotation {GROUP_NAME}="  " is invalid: it must not be empty', invalid=True
                )
            ]
        ),
    ),
    Case(
        "a very long bad value is cut short in the message",
        snap(node("n1"), pod("long", gang="g", min_available="9" * 100)),
        P(
            unschedulable=[
                unsched(
                    "long",
                    f'annotation {MIN_AVAILABLE}="{"9" * 64}..." {BAD_MIN}',
                    invalid=True,
                )
            ]
        ),
    ),
    Case(
        "a group-name longer than a label value (63 characters) is invalid, and shown cut",
        snap(node("n1"), pod("wordy", gang="g" * 200)),
        P(
            unschedulable=[
                unsched(
                    "wordy",
                    f'annotation {GROUP_NAME}="{"g" * 64}..." is invalid: it must have at most 63 characters',
                    invalid=True,
                )
            ]
        ),
    ),
    Case(
        "a group-name of 63 characters is fine",
        snap(node("n1"), pod("long", gang="g" * 63)),
        P(binds=[bind("long", "n1")]),
    ),
    Case(
        "a misspelled annotation key is that pod's error, with a suggestion",
        snap(
            *TWO,
            pod("typo", annotations={f"{ANNOTATION_PREFIX}groupname": "train"}),
            pod("typo-2", gang="train", annotations={f"{ANNOTATION_PREFIX}min-avaliable": "2"}),
            pod("odd", annotations={f"{ANNOTATION_PREFIX}colour": "blue"}),
        ),
        P(
            unschedulable=[
                unsched(
                    "typo",
                    f'annotation {ANNOTATION_PREFIX}groupname="train" is unknown: did you mean {GROUP_NAME}?',
                    invalid=True,
                ),
                unsched(
                    "typo-2",
                    f'annotation {ANNOTATION_PREFIX}min-avaliable="2" is unknown: '
                    f"did you mean {MIN_AVAILABLE}?",
                    invalid=True,
                ),
                unsched(
                    "odd",
                    f'annotation {ANNOTATION_PREFIX}colour="blue" is unknown '
                    f"(it knows {GROUP_NAME}, {MIN_AVAILABLE})",
                    invalid=True,
                ),
            ]
        ),
    ),
    # --- Gated pods (SPEC 2, v2) -------------------------------------------------------------------
    Case(
        "a gated pod takes no node, gets no reason, and the node goes to the next pod",
        snap(node("n1"), pod("gated", priority=100, t=0, gated=True), pod("open", priority=1, t=5)),
        P(binds=[bind("open", "n1")]),
    ),
    Case(
        "a gated pod of high priority evicts nobody",
        snap(node("n1"), pod("lo", on="n1", priority=1), pod("gated", priority=1000, gated=True)),
        P(),
    ),
    Case(
        "a gated member does not count toward its gang's quorum",
        snap(
            *TWO,
            pod("g-1", gang="g", min_available=2),
            pod("g-2", gang="g", min_available=2, gated=True),
        ),
        P(unschedulable=[unsched("g-1", "gang default/g: 1 of 2 required members exist")]),
    ),
    Case(
        "a gated pod's nomination reserves nothing",
        snap(node("n1"), pod("gated", priority=100, gated=True, nominated="n1"), pod("open")),
        P(binds=[bind("open", "n1")]),
    ),
    # --- Where a pod may run (SPEC 2, v2) ---------------------------------------------------------
    Case(
        "a pod takes the first free node feasible for it",
        snap(node("n1", labels={"pool": "b"}), node("n2", labels={"pool": "a"}), pod("a", where=POOL_A)),
        P(binds=[bind("a", "n2")]),
    ),
    Case(
        "the control plane's taint keeps our pods off it, and the reason says so",
        snap(node("cp", taints=(CONTROL_PLANE,)), pod("a")),
        P(unschedulable=[unsched("a", avail(1, f"1 {TAINTED}"))]),
    ),
    Case(
        "a toleration lets a pod onto a tainted node",
        snap(node("cp", taints=(CONTROL_PLANE,)), pod("a", where=Constraints(tolerations=(ANY,)))),
        P(binds=[bind("a", "cp")]),
    ),
    Case(
        "SPEC 2's reason: counted by cause, in the order the filters judge",
        snap(
            node("cp", taints=(CONTROL_PLANE,), labels={"pool": "gpu"}, allocatable={GPU: 8}),
            node("cpu-1", labels={"pool": "cpu"}),
            node("cpu-2", labels={"pool": "cpu"}),
            node("gpu-small", labels={"pool": "gpu"}, allocatable={GPU: 4}),
            node("gpu-1", labels={"pool": "gpu"}, allocatable={GPU: 8}),
            node("gpu-2", labels={"pool": "gpu"}, allocatable={GPU: 8}),
            pod("busy-1", on="gpu-1", priority=10),
            pod("busy-2", on="gpu-2", priority=10),
            pod("train", priority=10, where=EIGHT_GPUS),
        ),
        P(
            unschedulable=[
                unsched(
                    "train",
                    avail(
                        6,
                        f"1 {TAINTED}",
                        "2 node(s) didn't match Pod's node affinity/selector",
                        f"1 Insufficient {GPU}",
                        f"2 node(s) {HIGHER}",
                    ),
                )
            ]
        ),
    ),
    Case(
        "what other schedulers' pods request on a node is not there for ours",
        snap(
            node("g1", allocatable={GPU: 8}),
            node("g2", allocatable={GPU: 8}),
            pod("daemon", on="g1", scheduler="default-scheduler", where=Constraints(requests=((GPU, 1),))),
            pod("train", where=Constraints(requests=((GPU, 8),))),
        ),
        P(binds=[bind("train", "g2")]),
    ),
    Case(
        "a preemptor evicts only where it could run, whatever the victim order says",
        snap(
            node("n1", labels={"pool": "b"}),
            node("n2", labels={"pool": "a"}),
            pod("lowest", on="n1", priority=1),
            pod("low", on="n2", priority=5),
            pod("hi", priority=10, where=POOL_A),
        ),
        P(nominations=[nominate("hi", "n2", waiting_for=("low",))], evictions=[evict("low", "n2", by="hi")]),
    ),
    Case(
        "nobody is evicted for a preemptor that could run nowhere",
        snap(node("n1"), pod("low", on="n1", priority=1), pod("hi", priority=10, where=GPUS)),
        P(unschedulable=[unsched("hi", avail(1, f"1 Insufficient {GPU}"))]),
    ),
    Case(
        "a gang whose members differ is placed when some assignment exists (a matching, not greedy)",
        # Greedy, w-0 (the oldest) takes n1, the only node ps may use, and the gang fails.
        snap(
            node("n1", labels={"pool": "a"}),
            node("n2", labels={"pool": "b"}),
            pod("w-0", gang="g", min_available=2, t=0),
            pod("ps", gang="g", min_available=2, t=1, where=POOL_A),
        ),
        P(binds=[bind("w-0", "n2"), bind("ps", "n1")]),
    ),
    Case(
        "a gang whose members differ waits when no assignment exists",
        snap(
            node("n1", labels={"pool": "a"}),
            node("n2", labels={"pool": "b"}),
            pod("ps-0", gang="g", min_available=2, where=POOL_A),
            pod("ps-1", gang="g", min_available=2, where=POOL_A),
        ),
        P(
            unschedulable=[
                unsched(
                    p,
                    "gang default/g needs 2 nodes, 1 can be had: "
                    "1 node(s) didn't match Pod's node affinity/selector.",
                )
                for p in ("ps-0", "ps-1")
            ]
        ),
    ),
    Case(
        "a gang whose members differ preempts where they can run, and spares victims it does not need",
        snap(
            node("a1", labels={"pool": "a"}),
            node("a2", labels={"pool": "a"}),
            node("b1", labels={"pool": "b"}),
            pod("lo-a1", on="a1", priority=1, t=2),
            pod("lo-a2", on="a2", priority=1, t=1),
            pod("lo-b1", on="b1", priority=2),
            pod("w", gang="g", min_available=2, priority=10, t=0, where=POOL_B),
            pod("ps", gang="g", min_available=2, priority=10, t=1, where=POOL_A),
        ),
        P(
            nominations=[
                nominate("ps", "a1", waiting_for=("lo-a1",)),
                nominate("w", "b1", waiting_for=("lo-b1",)),
            ],
            evictions=[evict("lo-a1", "a1", by="ps"), evict("lo-b1", "b1", by="w")],
        ),
    ),
    Case(
        "a nominee whose node it can no longer run on gives it back and goes elsewhere",
        snap(
            node("n1", taints=(Taint("maintenance", "", "NoSchedule"),)),
            node("n2"),
            pod("hi", priority=10, nominated="n1"),
            pod("other", priority=1, t=1),
        ),
        P(
            binds=[bind("hi", "n2")],
            unschedulable=[
                unsched(
                    "other",
                    avail(2, "1 node(s) had untolerated taint {maintenance: }", f"1 node(s) {HIGHER}"),
                )
            ],
        ),
    ),
    # --- Preemption (SPEC 6) ---------------------------------------------------------------------
    Case(
        "equal priority never preempts",
        snap(node("n1"), pod("a", on="n1", priority=10), pod("b", priority=10)),
        P(unschedulable=[unsched("b", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "victims: lowest protected priority first",
        snap(
            node("n1"),
            node("n2"),
            pod("lo2", on="n1", priority=2),
            pod("lo1", on="n2", priority=1),
            pod("hi", priority=10),
        ),
        P(nominations=[nominate("hi", "n2", waiting_for=("lo1",))], evictions=[evict("lo1", "n2", by="hi")]),
    ),
    Case(
        "victims: at equal priority, pods outside gangs before gang members",
        snap(
            *TWO,
            node("n3"),
            pod("g-1", on="n1", priority=1, gang="g"),
            pod("g-2", on="n3", priority=1, gang="g"),
            pod("solo", on="n2", priority=1),
            pod("hi", priority=10),
        ),
        P(
            nominations=[nominate("hi", "n2", waiting_for=("solo",))],
            evictions=[evict("solo", "n2", by="hi")],
        ),
    ),
    Case(
        "victims: then the newest first",
        snap(
            *TWO,
            pod("old", on="n1", priority=1, t=1),
            pod("new", on="n2", priority=1, t=2),
            pod("hi", priority=10),
        ),
        P(nominations=[nominate("hi", "n2", waiting_for=("new",))], evictions=[evict("new", "n2", by="hi")]),
    ),
    Case(
        "victims: then by node name",
        snap(
            node("n2"),
            node("n1"),
            pod("b", on="n2", priority=1),
            pod("a", on="n1", priority=1),
            pod("hi", priority=10),
        ),
        P(nominations=[nominate("hi", "n1", waiting_for=("a",))], evictions=[evict("a", "n1", by="hi")]),
    ),
    Case(
        "gang integrity: a running gang at its min-available is evicted whole",
        snap(
            *TWO,
            pod("g-1", on="n1", priority=1, gang="g", min_available=2),
            pod("g-2", on="n2", priority=1, gang="g", min_available=2),
            pod("hi", priority=10),
        ),
        P(
            nominations=[nominate("hi", "n1", waiting_for=("g-1",))],
            evictions=[evict("g-1", "n1", by="hi"), evict("g-2", "n2", by="hi")],
        ),
    ),
    Case(
        "gang integrity: a gang with members to spare loses only what is needed",
        snap(
            *TWO,
            node("n3"),
            pod("g-1", on="n1", priority=1, gang="g", min_available=2),
            pod("g-2", on="n2", priority=1, gang="g", min_available=2),
            pod("g-3", on="n3", priority=1, gang="g", min_available=2),
            pod("hi", priority=10),
        ),
        P(nominations=[nominate("hi", "n1", waiting_for=("g-1",))], evictions=[evict("g-1", "n1", by="hi")]),
    ),
    Case(
        "freed nodes of a whole gang serve a preempting gang's further members",
        snap(
            *TWO,
            pod("v-1", on="n1", priority=1, gang="v", min_available=2),
            pod("v-2", on="n2", priority=1, gang="v", min_available=2),
            pod("h-1", priority=10, gang="h"),
            pod("h-2", priority=10, gang="h", t=1),
        ),
        P(
            nominations=[
                nominate("h-1", "n1", waiting_for=("v-1",)),
                nominate("h-2", "n2", waiting_for=("v-2",)),
            ],
            evictions=[evict("v-1", "n1", by="h-1"), evict("v-2", "n2", by="h-2")],
        ),
    ),
    Case(
        "preemption is all or nothing: no eviction unless the whole gang then fits",
        snap(
            *TWO,
            pod("hi-run", on="n1", priority=100),
            pod("lo", on="n2", priority=1),
            pod("g-1", priority=10, gang="g", min_available=2),
            pod("g-2", priority=10, gang="g", min_available=2),
        ),
        P(
            unschedulable=[
                unsched("g-1", f"gang default/g needs 2 nodes, 1 can be had: 1 node(s) {HIGHER}."),
                unsched("g-2", f"gang default/g needs 2 nodes, 1 can be had: 1 node(s) {HIGHER}."),
            ]
        ),
    ),
    Case(
        "preemption uses free nodes first and evicts only what is missing",
        snap(
            *TWO,
            node("n3"),
            pod("lo-a", on="n2", priority=1, t=1),
            pod("lo-b", on="n3", priority=1, t=2),
            pod("g-1", priority=10, gang="g", min_available=2),
            pod("g-2", priority=10, gang="g", min_available=2),
        ),
        P(
            nominations=[nominate("g-1", "n1"), nominate("g-2", "n3", waiting_for=("lo-b",))],
            evictions=[evict("lo-b", "n3", by="g-2")],
        ),
    ),
    Case(
        "a gang with one member whose preemptionPolicy is Never does not preempt",
        snap(
            node("n1"),
            pod("lo", on="n1", priority=1),
            pod("g-1", priority=10, gang="g"),
            pod("g-2", priority=10, gang="g", policy="Never"),
        ),
        P(
            unschedulable=[
                unsched(
                    p,
                    "gang default/g needs 1 nodes, 0 can be had: "
                    "1 node(s) hold a pod of lower priority, and preemptionPolicy is Never.",
                )
                for p in ("g-1", "g-2")
            ]
        ),
    ),
    Case(
        "terminating pods are not candidates: the next victim is chosen",
        snap(
            *TWO,
            pod("going", on="n1", priority=1, deleting=True),
            pod("lo", on="n2", priority=5),
            pod("hi", priority=10),
        ),
        P(nominations=[nominate("hi", "n2", waiting_for=("lo",))], evictions=[evict("lo", "n2", by="hi")]),
    ),
    Case(
        "pods on ineligible nodes are not candidates",
        snap(node("n1", cordoned=True), pod("lo", on="n1", priority=1), pod("hi", priority=10)),
        P(unschedulable=[unsched("hi", avail(1, "1 node(s) were unschedulable"))]),
    ),
    # --- Two phases and reservations (SPEC 6) ----------------------------------------------------
    Case(
        "a nominee waits while its victim terminates, and preempts nobody else",
        snap(
            *TWO,
            pod("lo", on="n1", priority=1, deleting=True),
            pod("lo2", on="n2", priority=1),
            pod("hi", priority=10, nominated="n1"),
        ),
        P(nominations=[nominate("hi", "n1", waiting_for=("lo",))]),
    ),
    Case(
        "a nominee waits for a terminating victim until the bound (60 s past its deletionTimestamp)",
        snap(
            *TWO,
            pod("stuck", on="n1", priority=1, deleted_at=950),
            pod("lo2", on="n2", priority=1),
            pod("hi", priority=10, nominated="n1"),
            now=1000,
        ),
        P(nominations=[nominate("hi", "n1", waiting_for=("stuck",))]),
    ),
    Case(
        "past the bound the victim is stuck: its nominee is placed elsewhere, by preemption if need be",
        snap(
            *TWO,
            pod("stuck", on="n1", priority=1, deleted_at=900),
            pod("lo2", on="n2", priority=1),
            pod("hi", priority=10, nominated="n1"),
            now=1000,
        ),
        P(nominations=[nominate("hi", "n2", waiting_for=("lo2",))], evictions=[evict("lo2", "n2", by="hi")]),
    ),
    Case(
        "a node whose pod is stuck terminating is unusable, and the reason says so",
        snap(
            node("n1"),
            pod("stuck", on="n1", priority=1, deleted_at=900),
            pod("a", priority=10),
            now=1000,
        ),
        P(
            unschedulable=[
                unsched("a", avail(1, "1 node(s) hold a pod still terminating 60s after its grace period"))
            ]
        ),
    ),
    Case(
        "a nominee is bound once its node is free",
        snap(*TWO, pod("x", on="n2", priority=100), pod("hi", priority=10, nominated="n1")),
        P(binds=[bind("hi", "n1")]),
    ),
    Case(
        "a nominated node is reserved against pods of equal priority, even older ones",
        snap(node("n1"), pod("old", priority=10, t=0), pod("nom", priority=10, t=5, nominated="n1")),
        P(
            binds=[bind("nom", "n1")],
            unschedulable=[unsched("old", avail(1, "1 node(s) are reserved for nominated pods"))],
        ),
    ),
    Case(
        "a unit of strictly higher priority takes over a reservation",
        snap(node("n1"), pod("top", priority=20, t=9), pod("nom", priority=10, nominated="n1")),
        P(binds=[bind("top", "n1")], unschedulable=[unsched("nom", avail(1, f"1 node(s) {HIGHER}"))]),
    ),
    Case(
        "a nominee whose victim is still there (eviction refused) preempts it again",
        snap(node("n1"), pod("lo", on="n1", priority=1), pod("hi", priority=10, nominated="n1")),
        P(nominations=[nominate("hi", "n1", waiting_for=("lo",))], evictions=[evict("lo", "n1", by="hi")]),
    ),
    Case(
        "a nominee whose node became NotReady goes elsewhere",
        snap(node("n1", ready=False), node("n2"), pod("hi", priority=10, nominated="n1")),
        P(binds=[bind("hi", "n2")]),
    ),
    Case(
        "of two pods nominated to one node, the one ahead in the pass holds it",
        snap(
            node("n1"),
            pod("lo", on="n1", priority=1, deleting=True),
            pod("a", priority=10, nominated="n1"),
            pod("b", priority=20, nominated="n1", t=1),
        ),
        P(
            nominations=[nominate("b", "n1", waiting_for=("lo",))],
            unschedulable=[unsched("a", avail(1, "1 node(s) are reserved for nominated pods"))],
        ),
    ),
    Case(
        "a node stays reserved for the whole pass, even when its nominee's gang cannot be placed",
        snap(
            node("n1"),
            pod("s", priority=10, t=0),
            pod("g-1", priority=10, t=5, gang="g", min_available=3, nominated="n1"),
            pod("g-2", priority=10, t=5, gang="g", min_available=3),
            pod("g-3", priority=10, t=5, gang="g", min_available=3),
        ),
        P(
            unschedulable=[
                *[unsched(p, "gang default/g needs 3 nodes, 1 can be had") for p in ("g-1", "g-2", "g-3")],
                unsched("s", avail(1, "1 node(s) are reserved for nominated pods")),
            ],
        ),
    ),
    Case(
        "a nominee short of quorum still reserves its node for the pass (the shell then clears it)",
        snap(
            node("n1"),
            pod("s", priority=10, t=0),
            pod("g-1", priority=10, t=5, gang="g", min_available=2, nominated="n1"),
        ),
        P(
            unschedulable=[
                unsched("g-1", "gang default/g: 1 of 2 required members exist"),
                unsched("s", avail(1, "1 node(s) are reserved for nominated pods")),
            ],
        ),
    ),
    Case(
        "a nomination of a pod that is bound already is ignored",
        snap(node("n1"), node("n2"), pod("b", on="n2"), pod("a", t=1)),
        P(binds=[bind("a", "n1")]),
    ),
    Case(
        "a gang is bound together: a free node is reserved while another waits for its victim",
        snap(
            *TWO,
            pod("lo", on="n2", priority=1),
            pod("g-1", priority=10, gang="g", min_available=2),
            pod("g-2", priority=10, gang="g", min_available=2),
        ),
        P(
            nominations=[nominate("g-1", "n1"), nominate("g-2", "n2", waiting_for=("lo",))],
            evictions=[evict("lo", "n2", by="g-2")],
        ),
    ),
    Case(
        "a nominated gang stays nominated while one victim is still terminating",
        snap(
            *TWO,
            pod("lo", on="n2", priority=1, deleting=True),
            pod("g-1", priority=10, gang="g", min_available=2, nominated="n1"),
            pod("g-2", priority=10, gang="g", min_available=2, nominated="n2"),
        ),
        P(nominations=[nominate("g-1", "n1"), nominate("g-2", "n2", waiting_for=("lo",))]),
    ),
    Case(
        "a nominated gang is bound in the pass in which all its nodes are free",
        snap(
            *TWO,
            pod("g-1", priority=10, gang="g", min_available=2, nominated="n1"),
            pod("g-2", priority=10, gang="g", min_available=2, nominated="n2"),
        ),
        P(binds=[bind("g-1", "n1"), bind("g-2", "n2")]),
    ),
    Case(
        "a nominated gang that can no longer be placed whole keeps no nomination (all or nothing)",
        snap(
            *TWO,
            node("n3"),
            pod("v", on="n2", priority=1, deleting=True),
            pod("big", on="n3", priority=100),
            pod("g-1", priority=10, gang="g", min_available=3, nominated="n1"),
            pod("g-2", priority=10, gang="g", min_available=3, nominated="n2"),
            pod("g-3", priority=10, gang="g", min_available=3),
            pod("small", priority=1),
        ),
        P(
            unschedulable=[
                *[
                    unsched(p, f"gang default/g needs 3 nodes, 2 can be had: 1 node(s) {HIGHER}.")
                    for p in ("g-1", "g-2", "g-3")
                ],
                unsched(
                    "small", avail(3, f"1 node(s) {HIGHER}", "2 node(s) are reserved for nominated pods")
                ),
            ],
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_planner_case(case: Case) -> None:
    assert plan(case.snapshot, settings=case.settings) == case.expected


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
