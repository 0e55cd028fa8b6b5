"""The informers' local copy of the cluster, and what the scheduler did that the watch has not shown yet.

Stores hold slim model objects keyed by uid (nodes and classes by name). Each change reports
whether it matters to planning, so the reconciler runs a pass only when something did. Effects
the scheduler has applied (binds, evictions, nominations) are *assumed* in every snapshot until
the watch confirms them or they expire, so a pass that runs before the watch catches up never
plans a pod twice. A pending pod whose bind or nomination was refused for a reason that will
not pass by itself (an admission webhook, a policy) is *held back*: left out of planning for a
while, 1 s doubling to 60 s, so it is not planned again and again. Time is passed in; the cache
reads no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from custom_scheduler.model import Node, Pod, PriorityClass, Snapshot

T = TypeVar("T")

_FINISHED = frozenset({"Succeeded", "Failed"})


def pod_relevant(old: Pod | None, new: Pod | None) -> bool:
    """Whether a pod change can change a plan (not, say, our own condition being written)."""
    if old is None or new is None:
        return True
    return (
        old.node_name != new.node_name
        or old.deleting != new.deleting
        or (old.phase in _FINISHED) != (new.phase in _FINISHED)
        # A bound pod occupies its node whether it runs yet or not: only finishing frees it.
        or (not new.node_name and (old.phase == "Pending") != (new.phase == "Pending"))
        or old.nominated_node != new.nominated_node
        or old.gated != new.gated
        or old.priority != new.priority
        or old.priority_class != new.priority_class
        or old.preemption_policy != new.preemption_policy
        or old.annotations != new.annotations
    )


def other_relevant(old: Pod | None, new: Pod | None) -> bool:
    """Whether a change of another scheduler's pod changes what is left on a node for ours."""
    if old is None or new is None:
        return True
    return (
        old.node_name != new.node_name
        or (old.phase in _FINISHED) != (new.phase in _FINISHED)
        or old.constraints.requests != new.constraints.requests
    )


def node_relevant(old: Node | None, new: Node | None) -> bool:
    """Whether a node change can change a plan: added, removed, cordoned, readiness, labels."""
    return old != new


def class_relevant(old: PriorityClass | None, new: PriorityClass | None) -> bool:
    """Whether a priority class change can change a plan."""
    return old != new


class Store(Generic[T]):
    """Objects of one kind by key; every change says whether planning should look again."""

    def __init__(self, key: Callable[[T], str], relevant: Callable[[T | None, T | None], bool]) -> None:
        self._key = key
        self._relevant = relevant
        self.items: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self.items)

    def put(self, item: T) -> bool:
        """An object was added or modified."""
        k = self._key(item)
        old = self.items.get(k)
        self.items[k] = item
        return self._relevant(old, item)

    def delete(self, item: T) -> bool:
        """An object was deleted (the watch sends its last state)."""
        old = self.items.pop(self._key(item), None)
        return old is not None and self._relevant(old, None)

    def replace(self, items: Iterable[T]) -> bool:
        """A relist: the new list is the truth; report whether anything relevant differs."""
        fresh = {self._key(i): i for i in items}
        changed = fresh.keys() != self.items.keys() or any(
            self._relevant(self.items[k], v) for k, v in fresh.items()
        )
        self.items = fresh
        return changed


def _pod_key(p: Pod) -> str:
    return p.uid or p.key


@dataclass(slots=True)
class _Assumed:
    node: str = ""  # bound to
    evicted: bool = False
    nominated: str | None = None  # None: no change assumed; "": nomination cleared
    until: float = 0.0


@dataclass(slots=True)
class _Held:
    failures: int = 0
    until: float = 0.0


HOLD_FIRST, HOLD_MOST = 1.0, 60.0  # seconds a refused pod is held back: first, and at most


class Cache:
    """Nodes, pods and priority classes, plus assumed effects; `snapshot()` is one pass's view."""

    def __init__(self, *, assume_ttl: float = 30.0) -> None:
        self.nodes: Store[Node] = Store(lambda n: n.name, node_relevant)
        self.pods: Store[Pod] = Store(_pod_key, pod_relevant)
        # Other schedulers' pods on nodes: only where they are and what they request.
        self.others: Store[Pod] = Store(_pod_key, other_relevant)
        self.classes: Store[PriorityClass] = Store(lambda c: c.name, class_relevant)
        self.assume_ttl = assume_ttl
        self._assumed: dict[str, _Assumed] = {}
        self._held: dict[str, _Held] = {}

    # -- pods held back after a refused write ----------------------------------------------

    def hold_back(self, uid: str, *, now: float) -> float:
        """A write placing (or evicting) this pod was refused: hold it back for a while; the seconds.

        A pending pod held back is left out of planning; a victim's eviction waits.
        """
        held = self._held.setdefault(uid, _Held())
        held.failures += 1
        delay = min(HOLD_FIRST * 2.0 ** (held.failures - 1), HOLD_MOST)
        held.until = now + delay
        return delay

    def release(self, uid: str) -> None:
        """A write placing this pod succeeded: no more holding back."""
        self._held.pop(uid, None)

    def holding(self, uid: str, *, now: float) -> bool:
        """Whether writes about this pod wait until its delay has passed."""
        held = self._held.get(uid)
        return held is not None and held.until > now

    def held(self, *, now: float) -> list[Pod]:
        """The pending pods held back at `now`."""
        pods = self.pods.items
        return [
            pod
            for uid, h in self._held.items()
            if h.until > now and (pod := pods.get(uid)) is not None and not pod.node_name
        ]

    # -- effects the watch has not confirmed yet ------------------------------------------

    def _entry(self, uid: str, now: float) -> _Assumed:
        entry = self._assumed.setdefault(uid, _Assumed())
        entry.until = now + self.assume_ttl
        return entry

    def assume_bound(self, uid: str, node: str, *, now: float) -> None:
        """We bound this pod to `node`; plan as if the watch had said so."""
        self._entry(uid, now).node = node

    def assume_evicted(self, uid: str, *, now: float) -> None:
        """We evicted this pod; plan as if it were terminating."""
        self._entry(uid, now).evicted = True

    def assume_nominated(self, uid: str, node: str, *, now: float) -> None:
        """We set (or, with "", cleared) this pod's nominated node."""
        self._entry(uid, now).nominated = node

    @property
    def assumed(self) -> int:
        """How many pods have effects not yet confirmed."""
        return len(self._assumed)

    def _confirmed(self, pod: Pod, a: _Assumed) -> bool:
        return (
            (not a.node or pod.node_name == a.node)
            and (not a.evicted or pod.deleting)
            and (a.nominated is None or pod.nominated_node == a.nominated or bool(pod.node_name))
        )

    def snapshot(self, *, now: float) -> Snapshot:
        """One immutable view: the stores with unconfirmed, unexpired effects applied."""
        pods = self.pods.items
        for uid, a in list(self._assumed.items()):
            pod = pods.get(uid)
            if pod is None or a.until <= now or self._confirmed(pod, a):
                del self._assumed[uid]
        for uid in [uid for uid in self._held if uid not in pods]:
            del self._held[uid]
        view = list(pods.values())
        if self._held:
            held = {p.uid for p in self.held(now=now)}
            view = [p for p in view if p.uid not in held]
        if self._assumed:
            view = [self._apply(p, self._assumed.get(p.uid)) for p in view]
        return Snapshot(
            nodes=tuple(self.nodes.items.values()),
            pods=(*view, *self.others.items.values()),
            priority_classes=tuple(self.classes.items.values()),
        )

    @staticmethod
    def _apply(pod: Pod, a: _Assumed | None) -> Pod:
        if a is None:
            return pod
        changes: dict[str, object] = {}
        if a.node and not pod.node_name:
            changes["node_name"] = a.node
        if a.evicted and not pod.deleting:
            changes["deleting"] = True
        if a.nominated is not None and not pod.node_name:
            changes["nominated_node"] = a.nominated
        return dataclasses.replace(pod, **changes) if changes else pod  # type: ignore[arg-type]
