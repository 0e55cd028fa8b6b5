"""Small builders for planner tests: `node("n1")`, `pod("a", priority=10)`, `pod("b", on="n1")`."""

from __future__ import annotations

from custom_scheduler.model import (
    GROUP_NAME,
    MIN_AVAILABLE,
    NO_CONSTRAINTS,
    Bind,
    Constraints,
    Evict,
    Node,
    Nominate,
    Pod,
    PriorityClass,
    Snapshot,
    Taint,
    Unschedulable,
)

NS = "default"


def node(
    name: str,
    *,
    ready: bool = True,
    cordoned: bool = False,
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    allocatable: dict[str, int] | None = None,
) -> Node:
    """A node; Ready and schedulable unless told otherwise."""
    return Node(
        name,
        labels=labels or {},
        ready=ready,
        unschedulable=cordoned,
        taints=taints,
        allocatable=allocatable or {},
    )


def _annotations(gang: str | None, min_available: str | int | None) -> dict[str, str]:
    out = {}
    if gang is not None:
        out[GROUP_NAME] = gang
    if min_available is not None:
        out[MIN_AVAILABLE] = str(min_available)
    return out


def pod(
    name: str,
    *,
    on: str = "",
    priority: int | None = None,
    cls: str = "",
    t: float = 0.0,
    ns: str = NS,
    gang: str | None = None,
    min_available: str | int | None = None,
    policy: str | None = None,
    nominated: str = "",
    phase: str | None = None,
    deleting: bool = False,
    deleted_at: float = 0.0,
    gated: bool = False,
    scheduler: str = "custom-scheduler",
    annotations: dict[str, str] | None = None,
    where: Constraints = NO_CONSTRAINTS,
) -> Pod:
    """A pod of ours: pending, or bound to `on` (Running unless `phase` says otherwise).

    `deleted_at` sets its deletionTimestamp (and makes it terminating); `annotations` add to the
    gang's; `where` says where it may run (selector, affinity, tolerations, requests).
    """
    return Pod(
        namespace=ns,
        name=name,
        uid=f"uid-{ns}-{name}",
        scheduler_name=scheduler,
        phase=phase or ("Running" if on else "Pending"),
        node_name=on,
        deleting=deleting or deleted_at > 0,
        deletion_time=deleted_at,
        creation=t,
        priority=priority,
        priority_class=cls,
        preemption_policy=policy,
        nominated_node=nominated,
        gated=gated,
        annotations=_annotations(gang, min_available) | (annotations or {}),
        constraints=where,
    )


def pclass(name: str, value: int, *, default: bool = False, policy: str | None = None) -> PriorityClass:
    """A PriorityClass."""
    return PriorityClass(name, value, global_default=default, preemption_policy=policy)


def snap(*items: Node | Pod | PriorityClass, now: float = 0.0) -> Snapshot:
    """A snapshot of the given nodes, pods and classes, in the order given, taken at `now`."""
    return Snapshot(
        nodes=tuple(i for i in items if isinstance(i, Node)),
        pods=tuple(i for i in items if isinstance(i, Pod)),
        priority_classes=tuple(i for i in items if isinstance(i, PriorityClass)),
        now=now,
    )


def key(name: str, ns: str = NS) -> str:
    """`namespace/name`."""
    return f"{ns}/{name}"


def bind(pod: str, node_name: str, ns: str = NS) -> Bind:
    """An expected bind."""
    return Bind(key(pod, ns), node_name)


def nominate(pod: str, node_name: str, *, waiting_for: tuple[str, ...] = (), ns: str = NS) -> Nominate:
    """An expected nomination; `waiting_for` names pods of the default namespace."""
    return Nominate(key(pod, ns), node_name, tuple(key(w) for w in waiting_for))


def evict(pod: str, node_name: str, *, by: str, ns: str = NS) -> Evict:
    """An expected eviction of `pod` for preemptor `by`."""
    return Evict(key(pod, ns), node_name, key(by, ns))


def unsched(pod: str, reason: str, *, invalid: bool = False, ns: str = NS) -> Unschedulable:
    """An expected reason for a pod left pending."""
    return Unschedulable(key(pod, ns), reason, invalid=invalid)
