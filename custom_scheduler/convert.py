"""The boundary: API objects (JSON dicts as the server sends them) to model dataclasses, and back.

Every field of an API object may be missing or of the wrong type, whatever the generated
client's hints say; a value that is not what it should be counts as missing. Only the fields
a scheduler needs are kept (no managedFields, no containers), so the cache stays slim. A
*required* field missing (a name, a namespace) raises `ConvertError` naming the object.

Request bodies are built here too, as plain dicts; this module reads no clock (timestamps are
passed in) and does no I/O.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    ANNOTATIONS,
    NO_CONSTRAINTS,
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

# What a user writes costs the cache a bounded amount: a value longer than any valid one is cut
# (enough is kept to tell it is too long and to show it), and of the keys under our prefix that
# the scheduler does not know, a few are kept, to say which one is wrong.
MAX_KEPT_VALUE = 65  # a group-name may have 63 characters
MAX_KEPT_KEY = 128
MAX_UNKNOWN_KEYS = 4
MAX_KEPT_MESSAGE = 1024  # our own condition messages are shorter
_EMPTY: dict[str, Any] = {}
_timestamps: dict[str, float] = {}


# What the scheduler writes into a message (a condition's, an event's) is cut to this many characters:
# a reason that names 2,000 victims, or an admission policy's long answer, stays readable and small.
MESSAGE_LIMIT = 1024


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text`, or its first `limit` characters ending in "..." (and how many were left out)."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text) - limit} more characters)"
    return text[: max(limit - len(tail), 0)] + tail


class ConvertError(ValueError):
    """An API object, or a list of them, without what it must have (the message names it)."""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _required(meta: dict[str, Any], field: str, kind: str, where: str) -> str:
    value = meta.get(field)
    if isinstance(value, str) and value:
        return value
    if value is None or value == "":
        raise ConvertError(f"{kind} {where}has no metadata.{field}")
    raise ConvertError(f"{kind} {where}has a metadata.{field} that is not a string: {value!r:.60}")


def _epoch(moment: date) -> float:
    """Seconds since the epoch; a moment without a zone is UTC (the API server's only zone)."""
    if not isinstance(moment, datetime):  # a bare date: its midnight
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_timestamp(value: object) -> float:
    """RFC 3339 (`2025-06-01T13:00:00Z`, fractions and offsets too) to epoch seconds; 0.0 if unreadable.

    A YAML snapshot written by hand may hold an unquoted timestamp, which YAML reads as a
    datetime: that counts too.
    """
    if not isinstance(value, str):
        return _epoch(value) if isinstance(value, date) else 0.0
    cached = _timestamps.get(value)
    if cached is not None:
        return cached
    try:
        seconds = _epoch(datetime.fromisoformat(value))
    except ValueError:
        seconds = 0.0
    if len(_timestamps) < 100_000:  # pods created in the same second share a string
        _timestamps[value] = seconds
    return seconds


# -- quantities ---------------------------------------------------------------------------------

# Kubernetes' quantity: a signed decimal number, then a binary (Ki..Ei) or decimal (n..E) suffix or
# a decimal exponent (e3, E-2). Exponents are tried before the one-letter suffixes: 1E3 is 1000.
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(text: str) -> Fraction:
    """`500m`, `2Gi`, `1e3`, `1.5` as an exact number; ValueError names what is wrong."""
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) and len(text) <= 64 else None
    if match is None:
        raise ValueError(f"{str(text)[:64]!r} is not a quantity")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    exponent = int(suffix[1:]) if suffix[:1] in ("e", "E") and len(suffix) > 1 else _DECIMAL.get(suffix, 0)
    if abs(exponent) > 30:
        raise ValueError(f"{text!r} is out of range")
    return number * Fraction(10) ** exponent


def amount(resource: str, quantity: Fraction) -> int:
    """A quantity in the integer unit the scheduler compares in, rounded up as kube-scheduler's
    filter rounds it: millicores for cpu, the resource's own unit for anything else."""
    return max(math.ceil(quantity * 1000 if resource == "cpu" else quantity), 0)


def _resources(value: object, what: str) -> dict[str, int]:
    """A ResourceList (`{"cpu": "500m", ...}`) in integer units; ConvertError on a bad quantity."""
    out: dict[str, int] = {}
    for resource, quantity in _dict(value).items():
        if not isinstance(resource, str):
            continue
        try:
            out[resource] = amount(resource, parse_quantity(str(quantity)))
        except ValueError as error:
            raise ConvertError(f"{what} {resource}: {error}") from None
    return out


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for resource, value in more.items():
        total[resource] = total.get(resource, 0) + value


def _at_least(total: dict[str, int], other: dict[str, int]) -> None:
    for resource, value in other.items():
        total[resource] = max(total.get(resource, 0), value)


def pod_requests(spec: dict[str, Any], what: str) -> dict[str, int]:
    """The pod's effective requests, as kube-scheduler counts them: the containers' sum, or the
    largest init container's need if larger (sidecars, init containers with restartPolicy Always,
    run beside the rest and add to both), pod-level requests for the resources they name, plus the
    runtime's overhead."""
    total: dict[str, int] = {}
    for container in _list(spec.get("containers")):
        _add(total, _resources(_dict(_dict(container).get("resources")).get("requests"), what))
    sidecars: dict[str, int] = {}
    init_need: dict[str, int] = {}
    for container in map(_dict, _list(spec.get("initContainers"))):
        requests = _resources(_dict(container.get("resources")).get("requests"), what)
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            need = dict(sidecars)
        else:
            need = dict(requests)
            _add(need, sidecars)
        _at_least(init_need, need)
    _at_least(total, init_need)
    pod_level = _resources(_dict(spec.get("resources")).get("requests"), what)
    for resource, value in pod_level.items():
        if resource in ("cpu", "memory") or resource.startswith("hugepages-"):
            total[resource] = value
    _add(total, _resources(spec.get("overhead"), what))
    return {resource: value for resource, value in total.items() if value > 0}


# -- where a pod may run ------------------------------------------------------------------------

_interned: dict[Constraints, Constraints] = {}


def _expressions(value: object) -> tuple[Expression, ...]:
    out = []
    for item in map(_dict, _list(value)):
        values = tuple(v for v in _list(item.get("values")) if isinstance(v, str))
        out.append(Expression(_str(item.get("key")), _str(item.get("operator")), values))
    return tuple(out)


def pod_constraints(spec: dict[str, Any], what: str) -> Constraints:
    """Node selector, required node affinity, tolerations and requests of a pod spec, shared with
    every other pod that has the same (a pass evaluates each distinct one once)."""
    selector = tuple(
        sorted(
            (k, v)
            for k, v in _dict(spec.get("nodeSelector")).items()
            if isinstance(k, str) and isinstance(v, str)
        )
    )
    affinity: tuple[Term, ...] | None = None
    required = _dict(
        _dict(_dict(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    if required:
        affinity = tuple(
            Term(_expressions(_dict(t).get("matchExpressions")), _expressions(_dict(t).get("matchFields")))
            for t in _list(required.get("nodeSelectorTerms"))
        )
    tolerations = tuple(
        Toleration(
            key=_str(t.get("key")),
            operator=_str(t.get("operator")) or "Equal",
            value=_str(t.get("value")),
            effect=_str(t.get("effect")),
        )
        for t in map(_dict, _list(spec.get("tolerations")))
    )
    requests = tuple(sorted(pod_requests(spec, f"{what}request").items()))
    return _intern(Constraints(selector, affinity, tolerations, requests))


def _intern(constraints: Constraints) -> Constraints:
    """The one shared object equal to these constraints."""
    if constraints == NO_CONSTRAINTS:
        return NO_CONSTRAINTS
    shared = _interned.get(constraints)
    if shared is None:
        if len(_interned) >= 10_000:  # bounded, whatever pods users create
            _interned.clear()
        shared = _interned[constraints] = constraints
    return shared


def node_from_api(obj: dict[str, Any], where: str = "") -> Node:
    """A Node: name, labels, Ready condition, spec.unschedulable, taints, allocatable."""
    if not isinstance(obj, dict):
        raise ConvertError(f"Node {where}is not an object")
    meta = _dict(obj.get("metadata"))
    name = _required(meta, "name", "Node", where)
    labels = {k: v for k, v in _dict(meta.get("labels")).items() if isinstance(k, str) and isinstance(v, str)}
    ready = False
    conditions = _dict(obj.get("status")).get("conditions")
    if isinstance(conditions, list):
        for c in conditions:
            if isinstance(c, dict) and c.get("type") == "Ready":
                ready = c.get("status") == "True"
    spec = _dict(obj.get("spec"))
    taints = tuple(
        Taint(_str(t.get("key")), _str(t.get("value")), _str(t.get("effect")))
        for t in map(_dict, _list(spec.get("taints")))
    )
    return Node(
        name,
        labels=labels,
        ready=ready,
        unschedulable=spec.get("unschedulable") is True,
        taints=taints,
        allocatable=_resources(_dict(obj.get("status")).get("allocatable"), f"Node {name!r} allocatable"),
    )


def _pod_parts(obj: object, where: str) -> tuple[dict[str, Any], str, str, dict[str, Any], dict[str, Any]]:
    """A pod's metadata, name, namespace, spec and status; ConvertError without a name or namespace."""
    if not isinstance(obj, dict):
        raise ConvertError(f"Pod {where}is not an object")
    meta = _dict(obj.get("metadata"))
    name = _required(meta, "name", "Pod", where)
    namespace = _required(meta, "namespace", "Pod", f"{where}{name!r} ")
    return meta, name, namespace, _dict(obj.get("spec")), _dict(obj.get("status"))


def pod_from_api(obj: dict[str, Any], where: str = "") -> Pod:
    """A Pod, reduced to what scheduling needs."""
    meta, name, namespace, spec, status = _pod_parts(obj, where)
    priority = spec.get("priority")
    reason = message = ""
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        for c in conditions:
            if isinstance(c, dict) and c.get("type") == "PodScheduled" and c.get("status") == "False":
                reason, message = _str(c.get("reason")), _str(c.get("message"))[:MAX_KEPT_MESSAGE]
    policy = spec.get("preemptionPolicy")
    return Pod(
        namespace=namespace,
        name=name,
        uid=_str(meta.get("uid")),
        scheduler_name=_str(spec.get("schedulerName")) or "default-scheduler",
        phase=_str(status.get("phase")) or "Pending",
        node_name=_str(spec.get("nodeName")),
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_time=parse_timestamp(meta.get("deletionTimestamp")),
        creation=parse_timestamp(meta.get("creationTimestamp")),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
        priority_class=_str(spec.get("priorityClassName")),
        preemption_policy=policy if isinstance(policy, str) and policy else None,
        nominated_node=_str(status.get("nominatedNodeName")),
        gated=bool(spec.get("schedulingGates")),
        annotations=_our_annotations(_dict(meta.get("annotations"))),
        constraints=pod_constraints(spec, f"Pod {namespace}/{name} "),
        scheduled_reason=reason,
        scheduled_message=message,
    )


def _our_annotations(annotations: dict[str, Any]) -> dict[str, str]:
    """The annotations under our prefix, bounded: ours, and the first few unknown keys."""
    kept = {k: v[:MAX_KEPT_VALUE] for k in ANNOTATIONS if isinstance(v := annotations.get(k), str)}
    if len(annotations) > len(kept):
        unknown = sorted(
            k
            for k in annotations
            if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX) and k not in ANNOTATIONS
        )
        for key in unknown[:MAX_UNKNOWN_KEYS]:
            value = annotations[key]
            kept[key[:MAX_KEPT_KEY]] = value[:MAX_KEPT_VALUE] if isinstance(value, str) else ""
    return kept


def other_pod_from_api(obj: dict[str, Any], where: str = "") -> Pod:
    """Another scheduler's pod on a node, reduced to where it is and what it requests (SPEC 2)."""
    meta, name, namespace, spec, status = _pod_parts(obj, where)
    requests = tuple(sorted(pod_requests(spec, f"Pod {namespace}/{name} request").items()))
    return Pod(
        namespace=namespace,
        name=name,
        uid=_str(meta.get("uid")),
        scheduler_name=_str(spec.get("schedulerName")) or "default-scheduler",
        phase=_str(status.get("phase")) or "Pending",
        node_name=_str(spec.get("nodeName")),
        constraints=_intern(Constraints(requests=requests)),
    )


def priority_class_from_api(obj: dict[str, Any], where: str = "") -> PriorityClass:
    """A PriorityClass: value (0 when missing), globalDefault, preemptionPolicy."""
    if not isinstance(obj, dict):
        raise ConvertError(f"PriorityClass {where}is not an object")
    name = _required(_dict(obj.get("metadata")), "name", "PriorityClass", where)
    value = obj.get("value")
    policy = obj.get("preemptionPolicy")
    return PriorityClass(
        name,
        value=value if isinstance(value, int) and not isinstance(value, bool) else 0,
        global_default=obj.get("globalDefault") is True,
        preemption_policy=policy if isinstance(policy, str) and policy else None,
    )


def _what(value: object) -> str:
    """A parsed document's type in the words of JSON and YAML, for error messages."""
    if value is None:
        return "an empty document"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


_CONVERTERS = {"Node": node_from_api, "Pod": pod_from_api, "PriorityClass": priority_class_from_api}


def snapshot_from_list(obj: object) -> Snapshot:
    """What `kubectl get nodes,pods,priorityclasses -A -o json` prints (a List) to a Snapshot.

    Items of other kinds are ignored. A typed list (`PodList`) may leave out its items' kind.
    """
    if not isinstance(obj, dict):
        raise ConvertError(f"expected a List object, got {_what(obj)}")
    list_kind = _str(obj.get("kind"))
    # Another typed list (ConfigMapList) is the wrong file, not an empty cluster: say so.
    if list_kind != "List" and not (list_kind.endswith("List") and list_kind[:-4] in _CONVERTERS):
        raise ConvertError(
            f"expected kind List (or NodeList, PodList, PriorityClassList), got {list_kind or 'no kind'}"
        )
    items = obj.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ConvertError("items is not a list")
    nodes, pods, classes = [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConvertError(f"item {i} is not an object")
        kind = _str(item.get("kind")) or (list_kind[:-4] if list_kind != "List" else "")
        where = f"item {i} "
        if not kind:
            name = _dict(item.get("metadata")).get("name")
            raise ConvertError(f"{where}{f'({name!r:.60}) ' if name else ''}has no kind")
        if kind == "Node":
            nodes.append(node_from_api(item, where))
        elif kind == "Pod":
            pods.append(pod_from_api(item, where))
        elif kind == "PriorityClass":
            classes.append(priority_class_from_api(item, where))
    return Snapshot(tuple(nodes), tuple(pods), tuple(classes))


# ---------------------------------------------------------------------------------------------
# Request bodies


def binding_body(namespace: str, name: str, node: str, uid: str = "") -> dict[str, Any]:
    """A v1 Binding of a pod to a node, for POST pods/binding; `uid`, when given, must match.

    The API server takes the Binding's metadata.uid as a precondition (as kube-scheduler sends
    it): a pod deleted and created again under the same name answers 409 instead of being bound
    to a node planned for its predecessor.
    """
    metadata = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def eviction_body(
    namespace: str, name: str, grace_period_seconds: int | None = None, *, uid: str = ""
) -> dict[str, Any]:
    """A policy/v1 Eviction; without a grace period the pod's own applies; `uid`, when given, must match.

    The uid precondition makes a pod created again under the victim's name (a StatefulSet's)
    answer 409 rather than be evicted in its predecessor's place.
    """
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    }
    options: dict[str, Any] = {}
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if uid:
        options["preconditions"] = {"uid": uid}
    if options:
        body["deleteOptions"] = options
    return body


def event_body(
    *,
    namespace: str,
    pod_name: str,
    pod_uid: str,
    type_: str,
    reason: str,
    message: str,
    timestamp: str,
    instance: str,
    component: str = "custom-scheduler",
) -> dict[str, Any]:
    """A core/v1 Event about a pod, as `kubectl describe pod` shows them."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        # The server appends a random suffix: names stay unique without a clock here.
        "metadata": {"generateName": f"{pod_name[:200]}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": namespace,
            "name": pod_name,
            "uid": pod_uid,
        },
        "type": type_,
        "reason": reason,
        "message": cut(message),
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


def pod_condition_patch(type_: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    """A strategic-merge patch of pods/status setting one condition (conditions merge by type)."""
    return {
        "status": {
            "conditions": [
                {
                    "type": type_,
                    "status": status,
                    "reason": reason,
                    "message": cut(message),
                    "lastTransitionTime": now,
                    "lastProbeTime": None,
                }
            ]
        }
    }


def nomination_patch(node: str | None) -> dict[str, Any]:
    """A patch of pods/status setting (or, with None, clearing) status.nominatedNodeName."""
    return {"status": {"nominatedNodeName": node}}
