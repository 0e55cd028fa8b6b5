"""The scheduler's view of the cluster and of what one pass decides, as plain frozen data.

Everything here is built by `convert` from API objects (or by tests directly) and read by the
planner; nothing here knows about the API client, time or logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The annotations of ours; any other key under the prefix is a mistake (SPEC 4).
ANNOTATION_PREFIX = "custom-scheduling.k8s.io/"
GROUP_NAME = ANNOTATION_PREFIX + "group-name"
MIN_AVAILABLE = ANNOTATION_PREFIX + "min-available"
ANNOTATIONS = (GROUP_NAME, MIN_AVAILABLE)

PREEMPT_LOWER = "PreemptLowerPriority"
PREEMPT_NEVER = "Never"


@dataclass(frozen=True, slots=True)
class Taint:
    """A node's taint (`spec.taints`): pods that do not tolerate it keep off (NoSchedule, NoExecute)."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod's toleration; an empty operator means Equal, an empty key with Exists matches every
    taint, an empty effect every effect."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""


@dataclass(frozen=True, slots=True)
class Expression:
    """One requirement of a node selector term: `key operator values` (In, NotIn, Exists,
    DoesNotExist, Gt, Lt)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Term:
    """A node selector term: its label expressions and field expressions, all required."""

    expressions: tuple[Expression, ...] = ()
    fields: tuple[Expression, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraints:
    """Where a pod may run, as far as the scheduler honours it (SPEC 2).

    `affinity` is None without a required node affinity (then it constrains nothing); `requests`
    are the pod's effective requests, by resource, in the resource's integer unit (millicores
    for cpu, bytes for memory, ...). Pods with equal constraints share one evaluation per pass.
    """

    node_selector: tuple[tuple[str, str], ...] = ()
    affinity: tuple[Term, ...] | None = None
    tolerations: tuple[Toleration, ...] = ()
    requests: tuple[tuple[str, int], ...] = ()
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Hashed once: the pass looks constraints up for every pending pod.
        object.__setattr__(
            self, "_hash", hash((self.node_selector, self.affinity, self.tolerations, self.requests))
        )

    def __hash__(self) -> int:
        return self._hash


NO_CONSTRAINTS = Constraints()


@dataclass(frozen=True, slots=True)
class Node:
    """A node: its name, labels, taints, allocatable resources, and whether it takes pods at all.

    `allocatable` is in the same integer units as `Constraints.requests`; a resource it does not
    list has none.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ready: bool = True
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    allocatable: Mapping[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod, reduced to what scheduling needs.

    `creation` is seconds since the epoch (0.0 when the API object had none); `node_name` and
    `nominated_node` are empty strings when unset; `priority` and `preemption_policy` are None
    when the pod's spec does not say (the class or the defaults decide then).
    """

    namespace: str
    name: str
    uid: str = ""
    scheduler_name: str = "custom-scheduler"
    phase: str = "Pending"
    node_name: str = ""
    deleting: bool = False
    deletion_time: float = 0.0  # metadata.deletionTimestamp (grace period included), 0.0 if none
    creation: float = 0.0
    priority: int | None = None
    priority_class: str = ""
    preemption_policy: str | None = None
    nominated_node: str = ""
    # spec.schedulingGates is not empty: the pod is not ready to be scheduled (SPEC 2).
    gated: bool = False
    # Annotations under ANNOTATION_PREFIX only, values cut short (`convert` bounds them).
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    constraints: Constraints = NO_CONSTRAINTS
    # What the pod's PodScheduled condition says now, so the shell writes only changes.
    scheduled_reason: str = ""
    scheduled_message: str = ""
    # `namespace/name`, the way pods are named in plans, events and logs (computed once: the
    # planner reads it hundreds of thousands of times on a large cluster).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.name}")


@dataclass(frozen=True, slots=True)
class PriorityClass:
    """A PriorityClass: the value its pods get, and whether it is the cluster default."""

    name: str
    value: int = 0
    global_default: bool = False
    preemption_policy: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable view of the cluster, the input of a pass."""

    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    priority_classes: tuple[PriorityClass, ...] = ()
    # Wall-clock seconds when it was taken (0.0: unknown), to tell a pod stuck terminating.
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind `pod` (namespace/name) to `node` now: its node is free."""

    pod: str
    node: str

    @property
    def message(self) -> str:
        """The text of the `Scheduled` event."""
        return f"Successfully assigned {self.pod} to {self.node}"


@dataclass(frozen=True, slots=True)
class Nominate:
    """Reserve `node` for `pod`: it is bound in a later pass, once the node is free.

    `waiting_for` names the pods (namespace/name) that must leave first, so the pod's status
    can say what it waits for.
    """

    pod: str
    node: str
    waiting_for: tuple[str, ...] = ()
    reason: str = ""  # set for the nodes a starving unit reserves (SPEC 6a)

    @property
    def message(self) -> str:
        """Why the pod is not bound yet, for its PodScheduled condition."""
        if self.reason:
            return self.reason
        if self.waiting_for:
            return f"nominated to node {self.node}; waiting for {', '.join(self.waiting_for)} to terminate"
        return f"nominated to node {self.node}; waiting for the rest of its gang's nodes"


@dataclass(frozen=True, slots=True)
class Evict:
    """Evict `pod` from `node` so that `preemptor` (a pod of a higher-priority unit) can run."""

    pod: str
    node: str
    preemptor: str

    @property
    def message(self) -> str:
        """The text of the `Preempted` event on the victim."""
        return f"Preempted by {self.preemptor} on node {self.node}"


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """`pod` stays pending this pass, for `reason` (the text users read in events and status).

    `invalid` marks a pod whose own annotations are wrong: it waits for a user to fix them.
    """

    pod: str
    reason: str
    invalid: bool = False


@dataclass(frozen=True, slots=True)
class Reserving:
    """The unit that reserves nodes as they free up (SPEC 6a): what it holds of its need, and how
    long it has waited (seconds since its waiting began)."""

    unit: str  # "gang namespace/name" or "pod namespace/name"
    held: int
    need: int
    waited: float


@dataclass(frozen=True, slots=True)
class Plan:
    """What one pass decides. Lists are sorted by pod, so equal plans compare equal."""

    binds: tuple[Bind, ...] = ()
    nominations: tuple[Nominate, ...] = ()
    evictions: tuple[Evict, ...] = ()
    unschedulable: tuple[Unschedulable, ...] = ()
    reserving: Reserving | None = None

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        """The plan as SPEC section 10 prints it."""
        return {
            "binds": [{"pod": b.pod, "node": b.node} for b in self.binds],
            "nominations": [{"pod": n.pod, "node": n.node} for n in self.nominations],
            "evictions": [{"pod": e.pod, "node": e.node, "preemptor": e.preemptor} for e in self.evictions],
            "unschedulable": [{"pod": u.pod, "reason": u.reason} for u in self.unschedulable],
        }
