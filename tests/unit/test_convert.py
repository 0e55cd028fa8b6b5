"""The boundary: API objects to the model (every field may be missing or wrong), and request bodies."""

from __future__ import annotations

import copy
import datetime
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_scheduler import convert
from custom_scheduler.convert import ConvertError
from custom_scheduler.model import (
    ANNOTATION_PREFIX,
    GROUP_NAME,
    MIN_AVAILABLE,
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

DATA = Path(__file__).parent / "data"

# What `kubectl get pod -o json` prints for a Job's pod that a scheduler marked unschedulable.
KUBECTL_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "annotations": {
            GROUP_NAME: "train",
            MIN_AVAILABLE: "2",
            "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"batch/v1"}',
        },
        "creationTimestamp": "2025-06-01T13:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "deletionTimestamp": "2025-06-01T13:05:00Z",
        "finalizers": ["batch.kubernetes.io/job-tracking"],
        "generateName": "train-",
        "labels": {"batch.kubernetes.io/job-name": "train", "job-name": "train"},
        "managedFields": [
            {
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}}, "f:spec": {"f:containers": {}}},
                "manager": "kube-controller-manager",
                "operation": "Update",
                "time": "2025-06-01T13:00:00Z",
            },
            {
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {}}},
                "manager": "custom-scheduler",
                "operation": "Update",
                "subresource": "status",
                "time": "2025-06-01T13:00:05Z",
            },
        ],
        "name": "train-x7k2p",
        "namespace": "ml",
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": "Job",
                "name": "train",
                "uid": "0b7f3c55-1b2a-4c3d-9e8f-000000000020",
            }
        ],
        "resourceVersion": "601",
        "uid": "7c9e1d2a-3b4c-4d5e-8f60-000000000021",
    },
    "spec": {
        "containers": [
            {
                "image": "registry.k8s.io/pause:3.10",
                "imagePullPolicy": "IfNotPresent",
                "name": "main",
                "resources": {"requests": {"cpu": "100m"}},
                "terminationMessagePath": "/dev/termination-log",
                "volumeMounts": [
                    {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access"}
                ],
            }
        ],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": "n1",
        "preemptionPolicy": "Never",
        "priority": 1000000,
        "priorityClassName": "high-priority",
        "restartPolicy": "Never",
        "schedulerName": "custom-scheduler",
        "securityContext": {},
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "tolerationSeconds": 300,
            }
        ],
        "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": []}}],
    },
    "status": {
        "conditions": [
            {
                "lastProbeTime": None,
                "lastTransitionTime": "2025-06-01T13:00:01Z",
                "status": "True",
                "type": "Ready",
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": "2025-06-01T13:00:05Z",
                "message": "gang ml/train needs 2 nodes, 1 can be had",
                "reason": "Unschedulable",
                "status": "False",
                "type": "PodScheduled",
            },
        ],
        "nominatedNodeName": "n2",
        "phase": "Running",
        "qosClass": "Burstable",
    },
}

# What `kubectl get node -o json` prints for a cordoned, ready node.
KUBECTL_NODE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        "creationTimestamp": "2025-06-01T12:00:00Z",
        "labels": {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "pool": "gpu"},
        "managedFields": [{"manager": "kubelet", "operation": "Update", "subresource": "status"}],
        "name": "n1",
        "resourceVersion": "412",
        "uid": "1f0c8a4e-0000-4000-8000-000000000001",
    },
    "spec": {
        "podCIDR": "10.244.1.0/24",
        "taints": [{"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable"}],
        "unschedulable": True,
    },
    "status": {
        "addresses": [{"address": "10.0.0.1", "type": "InternalIP"}],
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "conditions": [
            {"reason": "KubeletHasSufficientMemory", "status": "False", "type": "MemoryPressure"},
            {"reason": "KubeletHasNoDiskPressure", "status": "False", "type": "DiskPressure"},
            {
                "lastHeartbeatTime": "2025-06-01T13:00:00Z",
                "message": "kubelet is posting ready status",
                "reason": "KubeletReady",
                "status": "True",
                "type": "Ready",
            },
        ],
        "nodeInfo": {"kubeletVersion": "v1.36.0"},
    },
}

KUBECTL_CLASS: dict[str, Any] = {
    "apiVersion": "scheduling.k8s.io/v1",
    "description": "For the pods that must run.",
    "globalDefault": True,
    "kind": "PriorityClass",
    "metadata": {"creationTimestamp": "2025-06-01T11:00:00Z", "name": "high-priority", "uid": "c1"},
    "preemptionPolicy": "Never",
    "value": 1000000,
}


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the dotted `path` set to `value` (or removed, for `...`)."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = out
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return out


# -- pods ---------------------------------------------------------------------------------------


def test_a_kubectl_pod_keeps_only_what_scheduling_needs() -> None:
    pod = convert.pod_from_api(KUBECTL_POD)
    assert pod == Pod(
        namespace="ml",
        name="train-x7k2p",
        uid="7c9e1d2a-3b4c-4d5e-8f60-000000000021",
        scheduler_name="custom-scheduler",
        phase="Running",
        node_name="n1",
        deleting=True,
        deletion_time=1748783100.0,
        creation=1748782800.0,
        priority=1000000,
        priority_class="high-priority",
        preemption_policy="Never",
        nominated_node="n2",
        annotations={GROUP_NAME: "train", MIN_AVAILABLE: "2"},
        scheduled_reason="Unschedulable",
        scheduled_message="gang ml/train needs 2 nodes, 1 can be had",
        constraints=Constraints(
            tolerations=(Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),),
            requests=(("cpu", 100),),
        ),
    )
    assert pod.key == "ml/train-x7k2p"
    assert dict(pod.annotations) == {GROUP_NAME: "train", MIN_AVAILABLE: "2"}, "the cache stays slim"


def test_scheduling_gates_make_a_pod_gated() -> None:
    gated = with_(KUBECTL_POD, "spec.schedulingGates", [{"name": "example.com/quota"}])
    assert convert.pod_from_api(gated).gated is True
    assert convert.pod_from_api(with_(KUBECTL_POD, "spec.schedulingGates", [])).gated is False
    assert convert.pod_from_api(KUBECTL_POD).gated is False


def test_what_a_user_writes_costs_the_cache_a_bounded_amount() -> None:
    """Issue 11.5: 400 pods with 200 KiB group names took the scheduler from 83 to 428 MiB."""
    huge = "g" * 200 * 1024
    annotations = {
        GROUP_NAME: huge,
        MIN_AVAILABLE: "9" * 1000,
        **{f"{ANNOTATION_PREFIX}typo-{i}": huge for i in range(100)},
        "example.com/other": huge,
    }
    obj = with_(KUBECTL_POD, "metadata.annotations", annotations)
    obj = with_(obj, "status.conditions", [{"type": "PodScheduled", "status": "False", "message": huge}])
    pod = convert.pod_from_api(obj)
    assert len(pod.annotations[GROUP_NAME]) == 65, "enough to tell it is longer than 63, and to show it"
    assert len(pod.annotations[MIN_AVAILABLE]) == 65
    unknown = sorted(k for k in pod.annotations if k not in (GROUP_NAME, MIN_AVAILABLE))
    assert unknown == sorted(f"{ANNOTATION_PREFIX}typo-{i}" for i in range(100))[:4]
    assert all(len(v) == 65 for v in pod.annotations.values())
    assert len(pod.scheduled_message) == 1024
    assert "example.com/other" not in pod.annotations


def test_a_bare_pod_gets_the_model_defaults_and_the_api_servers_scheduler() -> None:
    pod = convert.pod_from_api({"metadata": {"name": "a", "namespace": "ns"}})
    assert pod == Pod(namespace="ns", name="a", scheduler_name="default-scheduler")
    assert (pod.phase, pod.priority, pod.preemption_policy, pod.creation, pod.deleting) == (
        "Pending",
        None,
        None,
        0.0,
        False,
    )


def test_a_scheduled_condition_counts_only_when_false() -> None:
    scheduled = with_(
        KUBECTL_POD,
        "status.conditions",
        [{"type": "PodScheduled", "status": "True", "reason": "Whatever", "message": "m"}],
    )
    pod = convert.pod_from_api(scheduled)
    assert (pod.scheduled_reason, pod.scheduled_message) == ("", "")


# Each row: one field of a realistic pod missing, null or of the wrong type, and what the pod
# then says about it (the model's default, or the API server's).
@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        ("metadata.uid", ..., "uid", ""),
        ("metadata.uid", 12, "uid", ""),
        ("metadata.annotations", None, "annotations", {}),
        ("metadata.annotations", ["a"], "annotations", {}),
        ("metadata.annotations", {GROUP_NAME: 3, MIN_AVAILABLE: None}, "annotations", {}),
        ("metadata.creationTimestamp", ..., "creation", 0.0),
        ("metadata.creationTimestamp", None, "creation", 0.0),
        ("metadata.creationTimestamp", "yesterday", "creation", 0.0),
        ("metadata.creationTimestamp", 1748782800, "creation", 0.0),
        ("metadata.deletionTimestamp", ..., "deleting", False),
        ("metadata.deletionTimestamp", None, "deleting", False),
        ("metadata.deletionTimestamp", ..., "deletion_time", 0.0),
        ("metadata.deletionTimestamp", "soon", "deleting", True),
        ("metadata.deletionTimestamp", "soon", "deletion_time", 0.0),
        ("spec", None, "node_name", ""),
        ("spec", "not a spec", "scheduler_name", "default-scheduler"),
        ("spec.schedulerName", ..., "scheduler_name", "default-scheduler"),
        ("spec.schedulerName", "", "scheduler_name", "default-scheduler"),
        ("spec.schedulerName", ["custom-scheduler"], "scheduler_name", "default-scheduler"),
        ("spec.nodeName", None, "node_name", ""),
        ("spec.nodeName", 3, "node_name", ""),
        ("spec.priority", ..., "priority", None),
        ("spec.priority", None, "priority", None),
        ("spec.priority", "1000000", "priority", None),
        ("spec.priority", True, "priority", None),
        ("spec.priority", 1.5, "priority", None),
        ("spec.priority", -5, "priority", -5),
        ("spec.priorityClassName", None, "priority_class", ""),
        ("spec.preemptionPolicy", ..., "preemption_policy", None),
        ("spec.preemptionPolicy", "", "preemption_policy", None),
        ("spec.preemptionPolicy", False, "preemption_policy", None),
        ("status", None, "phase", "Pending"),
        ("status", [], "nominated_node", ""),
        ("status.phase", ..., "phase", "Pending"),
        ("status.phase", 0, "phase", "Pending"),
        ("status.nominatedNodeName", None, "nominated_node", ""),
        ("status.conditions", None, "scheduled_reason", ""),
        ("status.conditions", "PodScheduled", "scheduled_reason", ""),
        ("status.conditions", [None, 3, "x", {"type": "PodScheduled"}], "scheduled_reason", ""),
        (
            "status.conditions",
            [{"type": "PodScheduled", "status": "False", "reason": 5, "message": None}],
            "scheduled_message",
            "",
        ),
    ],
)
def test_a_missing_or_wrong_field_counts_as_missing(
    path: str, value: Any, attribute: str, expected: object
) -> None:
    pod = convert.pod_from_api(with_(KUBECTL_POD, path, value))
    assert getattr(pod, attribute) == expected
    assert pod.key == "ml/train-x7k2p"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-06-01T13:00:00Z", 1748782800.0),
        ("2025-06-01T13:00:00.250000Z", 1748782800.25),
        ("2025-06-01T15:00:00+02:00", 1748782800.0),
        ("2025-06-01T13:00:00", 1748782800.0),  # no zone: UTC, whatever the machine's zone
        ("", 0.0),
        ("2025-13-01T00:00:00Z", 0.0),
    ],
)
def test_timestamps(text: str, seconds: float) -> None:
    assert convert.parse_timestamp(text) == seconds
    assert convert.parse_timestamp(text) == seconds, "the cached answer is the same"


def test_timestamps_that_yaml_read_as_dates() -> None:
    doc = yaml.safe_load("a: 2025-06-01T13:00:00Z\nb: 2025-06-01 13:00:00\nc: 2025-06-01\n")
    assert isinstance(doc["a"], datetime.datetime)
    assert convert.parse_timestamp(doc["a"]) == 1748782800.0
    assert convert.parse_timestamp(doc["b"]) == 1748782800.0
    assert convert.parse_timestamp(doc["c"]) == 1748736000.0


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {"namespace": "ns"}}, "^Pod has no metadata.name$"),
        ({"metadata": {"name": "", "namespace": "ns"}}, "^Pod has no metadata.name$"),
        ({"metadata": {"name": None, "namespace": "ns"}}, "^Pod has no metadata.name$"),
        ({"metadata": {"name": 42, "namespace": "ns"}}, "^Pod has a metadata.name that is not a string: 42$"),
        ({"metadata": {"name": "a"}}, "^Pod 'a' has no metadata.namespace$"),
        ({"metadata": {"name": "a", "namespace": ["ns"]}}, "^Pod 'a' has a metadata.namespace that is not"),
        ({"metadata": None}, "^Pod has no metadata.name$"),
        ({"metadata": "a"}, "^Pod has no metadata.name$"),
        ({}, "^Pod has no metadata.name$"),
        ("not an object", "^Pod is not an object$"),
        (None, "^Pod is not an object$"),
    ],
)
def test_a_pod_needs_a_name_and_a_namespace(obj: Any, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        convert.pod_from_api(obj)


def test_convert_errors_are_value_errors() -> None:
    assert issubclass(ConvertError, ValueError)


# Any value YAML or JSON can hold, nested.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.dates()
    | st.datetimes(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)
PATHS = st.sampled_from(
    [
        "metadata",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.annotations",
        "metadata.labels",
        "metadata.creationTimestamp",
        "metadata.deletionTimestamp",
        "spec",
        "spec.schedulerName",
        "spec.nodeName",
        "spec.priority",
        "spec.priorityClassName",
        "spec.preemptionPolicy",
        "status",
        "status.phase",
        "status.nominatedNodeName",
        "status.conditions",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PATHS, JSON_VALUES), max_size=4))
def test_whatever_a_field_holds_the_answer_is_a_pod_or_a_convert_error(
    changes: list[tuple[str, Any]],
) -> None:
    obj: dict[str, Any] = copy.deepcopy(KUBECTL_POD)
    for path, value in changes:
        parent = path.rpartition(".")[0]
        if parent and not isinstance(_get(obj, parent), dict):
            continue  # an earlier change made its parent a non-object: nothing to set
        obj = with_(obj, path, value)
    try:
        pod = convert.pod_from_api(obj)
    except ConvertError as error:
        assert str(error).startswith("Pod ")
        return
    assert isinstance(pod.name, str) and pod.name and isinstance(pod.namespace, str) and pod.namespace
    assert isinstance(pod.creation, float) and isinstance(pod.deletion_time, float)
    assert pod.priority is None or type(pod.priority) is int
    assert all(k.startswith(ANNOTATION_PREFIX) for k in pod.annotations) and len(pod.annotations) <= 6
    assert all(isinstance(v, str) and len(v) <= 65 for v in pod.annotations.values())
    for text in (
        pod.uid,
        pod.scheduler_name,
        pod.phase,
        pod.node_name,
        pod.priority_class,
        pod.nominated_node,
    ):
        assert isinstance(text, str)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_whatever_the_document_the_answer_is_a_snapshot_or_a_convert_error(doc: Any) -> None:
    for candidate in (doc, {"kind": "List", "items": doc}, {"kind": "List", "items": [doc]}):
        try:
            snapshot = convert.snapshot_from_list(candidate)
        except ConvertError as error:  # the one error allowed: any other fails the test
            assert str(error), "a message to print"
        else:
            assert isinstance(snapshot, Snapshot)


def _get(obj: dict[str, Any], path: str) -> Any:
    target: Any = obj
    for key in path.split("."):
        target = target.get(key) if isinstance(target, dict) else None
    return target


# -- nodes and classes --------------------------------------------------------------------------


def test_a_kubectl_node() -> None:
    labels = {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "pool": "gpu"}
    assert convert.node_from_api(KUBECTL_NODE) == Node(
        "n1",
        labels=labels,
        ready=True,
        unschedulable=True,
        taints=(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"),),
        allocatable={"cpu": 32_000, "memory": 256 * 2**30, "pods": 110},
    )


# Kubernetes' quantities, as its resource.Quantity reads them.
@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("2Ki", Fraction(2048)),
        ("1Mi", Fraction(2**20)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1Ti", Fraction(2**40)),
        ("1Pi", Fraction(2**50)),
        ("1Ei", Fraction(2**60)),
        ("250n", Fraction(250, 10**9)),
        ("7u", Fraction(7, 10**6)),
        ("3k", Fraction(3000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1T", Fraction(10**12)),
        ("1P", Fraction(10**15)),
        ("1E", Fraction(10**18)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("12e-1", Fraction(6, 5)),
        ("+4", Fraction(4)),
        (" 8 ", Fraction(8)),
    ],
)
def test_quantities(text: str, exact: Fraction) -> None:
    assert convert.parse_quantity(text) == exact


@pytest.mark.parametrize("text", ["", "m", "1.2.3", "1mi", "1 Gi", "1KiB", "abc", "1e", "x" * 100, "1e999"])
def test_not_quantities(text: str) -> None:
    with pytest.raises(ValueError):
        convert.parse_quantity(text)


@pytest.mark.parametrize(
    ("resource", "text", "amount"),
    [
        ("cpu", "1", 1000),
        ("cpu", "100m", 100),
        ("cpu", "0.0001", 1),  # rounded up to a millicore, as kube-scheduler's MilliValue
        ("memory", "1Gi", 2**30),
        ("memory", "0.5", 1),  # rounded up to a byte, as Value
        ("nvidia.com/gpu", "8", 8),
        ("ephemeral-storage", "1e3", 1000),
    ],
)
def test_amounts_in_the_units_the_filter_compares(resource: str, text: str, amount: int) -> None:
    assert convert.amount(resource, convert.parse_quantity(text)) == amount


def _containers(*requests: dict[str, str], restart: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, r in enumerate(requests):
        container: dict[str, Any] = {"name": f"c{i}", "resources": {"requests": r}}
        if restart:
            container["restartPolicy"] = restart
        out.append(container)
    return out


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {}),
        (
            {"containers": _containers({"cpu": "1"}, {"cpu": "500m", "memory": "1Gi"})},
            {"cpu": 1500, "memory": 2**30},
        ),
        # The largest init container, if larger than the containers' sum.
        (
            {
                "containers": _containers({"cpu": "1"}),
                "initContainers": _containers({"cpu": "2"}, {"memory": "1Gi"}),
            },
            {"cpu": 2000, "memory": 2**30},
        ),
        # Overhead is added on top.
        ({"containers": _containers({"cpu": "1"}), "overhead": {"cpu": "250m"}}, {"cpu": 1250}),
        # A sidecar (an init container that keeps running) adds to the containers and to the
        # init containers that start after it.
        (
            {
                "containers": _containers({"cpu": "1"}),
                "initContainers": [
                    *_containers({"cpu": "500m"}, restart="Always"),
                    *_containers({"cpu": "2"}),
                ],
            },
            {"cpu": 2500},
        ),
        # Pod-level requests replace the containers' for cpu and memory.
        (
            {
                "containers": _containers({"cpu": "4", "nvidia.com/gpu": "1"}),
                "resources": {"requests": {"cpu": "2"}},
            },
            {"cpu": 2000, "nvidia.com/gpu": 1},
        ),
        # A zero request is no request.
        ({"containers": _containers({"cpu": "0"})}, {}),
    ],
)
def test_effective_requests(spec: dict[str, Any], expected: dict[str, int]) -> None:
    assert convert.pod_requests(spec, "pod ") == expected


def test_a_bad_quantity_names_the_pod_and_the_resource() -> None:
    obj = with_(KUBECTL_POD, "spec.containers", _containers({"cpu": "lots"}))
    with pytest.raises(ConvertError, match=r"Pod ml/train-x7k2p request cpu: 'lots' is not a quantity"):
        convert.pod_from_api(obj)


def test_where_a_pod_may_run() -> None:
    spec = {
        "nodeSelector": {"pool": "gpu", "zone": "a"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "gpu", "operator": "In", "values": ["h100", "a100"]}
                            ],
                            "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n9"]}],
                        },
                        {"matchExpressions": [{"key": "big", "operator": "Exists"}]},
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}],
            }
        },
        "tolerations": [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}, {"operator": "Exists"}],
    }
    constraints = convert.pod_constraints(spec, "pod ")
    assert constraints == Constraints(
        node_selector=(("pool", "gpu"), ("zone", "a")),
        affinity=(
            Term(
                (Expression("gpu", "In", ("h100", "a100")),),
                (Expression("metadata.name", "NotIn", ("n9",)),),
            ),
            Term((Expression("big", "Exists"),)),
        ),
        tolerations=(Toleration("dedicated", "Equal", "ml", "NoSchedule"), Toleration(operator="Exists")),
    )
    assert convert.pod_constraints(spec, "pod ") is constraints, "equal constraints are one object"
    assert convert.pod_constraints({}, "pod ") is NO_CONSTRAINTS
    # Only a required affinity constrains; preferred ones are ignored.
    preferred: dict[str, Any] = {
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    }
    assert convert.pod_constraints(preferred, "pod ") is NO_CONSTRAINTS


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        ("spec", None, "unschedulable", False),
        ("spec.unschedulable", ..., "unschedulable", False),
        ("spec.unschedulable", "true", "unschedulable", False),
        ("spec.unschedulable", 1, "unschedulable", False),
        ("status", None, "ready", False),
        ("status.conditions", ..., "ready", False),
        ("status.conditions", {"Ready": "True"}, "ready", False),
        ("status.conditions", [{"type": "Ready", "status": "False"}], "ready", False),
        ("status.conditions", [{"type": "Ready", "status": "Unknown"}], "ready", False),
        ("status.conditions", [{"type": "Ready", "status": True}], "ready", False),
        ("status.conditions", [None, {"type": "Ready", "status": "True"}], "ready", True),
        ("metadata.labels", None, "labels", {}),
        ("metadata.labels", ["pool"], "labels", {}),
        ("metadata.labels", {"pool": "gpu", "zone": 1, "rack": None}, "labels", {"pool": "gpu"}),
        ("metadata.labels", {1: "a", "pool": "gpu"}, "labels", {"pool": "gpu"}),  # YAML keys can be ints
    ],
)
def test_a_node_field_missing_or_wrong(path: str, value: Any, attribute: str, expected: object) -> None:
    node = convert.node_from_api(with_(KUBECTL_NODE, path, value))
    assert getattr(node, attribute) == expected
    assert node.name == "n1"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {}}, "^Node has no metadata.name$"),
        ({"metadata": {"name": True}}, "^Node has a metadata.name that is not a string: True$"),
        ([], "^Node is not an object$"),
    ],
)
def test_a_node_needs_a_name(obj: Any, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        convert.node_from_api(obj)


def test_priority_classes() -> None:
    assert convert.priority_class_from_api(KUBECTL_CLASS) == PriorityClass(
        "high-priority", 1000000, True, "Never"
    )
    assert convert.priority_class_from_api({"metadata": {"name": "x"}}) == PriorityClass("x", 0)
    odd = {"metadata": {"name": "x"}, "value": "10", "globalDefault": "true", "preemptionPolicy": 7}
    assert convert.priority_class_from_api(odd) == PriorityClass("x", 0, False, None)
    assert convert.priority_class_from_api({"metadata": {"name": "x"}, "value": True}).value == 0
    with pytest.raises(ConvertError, match=r"^PriorityClass has no metadata\.name$"):
        convert.priority_class_from_api({"value": 5})
    with pytest.raises(ConvertError, match=r"^PriorityClass is not an object$"):
        convert.priority_class_from_api("high")  # type: ignore[arg-type]


# -- lists --------------------------------------------------------------------------------------


def test_a_kubectl_list_becomes_a_snapshot() -> None:
    snapshot = convert.snapshot_from_list(json.loads((DATA / "demo-two.json").read_text()))
    assert [n.name for n in snapshot.nodes] == ["n1", "n2"]
    assert [p.name for p in snapshot.pods] == ["test-pod-low-pri", "job-two-highpri-a", "job-two-highpri-b"]
    assert {c.name: c.value for c in snapshot.priority_classes} == {
        "high-priority": 1000000,
        "low-priority": 10,
    }
    assert snapshot.now == 0.0, "convert reads no clock"


def test_a_kubectl_yaml_list_becomes_the_same_kind_of_snapshot() -> None:
    snapshot = convert.snapshot_from_list(yaml.safe_load((DATA / "demo-one.yaml").read_text()))
    assert [n.name for n in snapshot.nodes] == ["n1", "n2"]
    high, *job = snapshot.pods
    assert (high.name, high.node_name, high.priority, high.phase) == (
        "test-pod-high-pri",
        "n1",
        1000000,
        "Running",
    )
    assert [p.annotations for p in job] == [{GROUP_NAME: "job-two-lowpri", MIN_AVAILABLE: "2"}] * 2
    assert job[1].scheduled_reason == "Unschedulable"
    assert {c.name: (c.value, c.preemption_policy) for c in snapshot.priority_classes} == {
        "high-priority": (1000000, "PreemptLowerPriority"),
        "low-priority": (10, "PreemptLowerPriority"),
    }


def test_the_snapshot_keeps_the_input_order() -> None:
    items = [{"kind": "Pod", "metadata": {"name": n, "namespace": "ns"}} for n in "cab"]
    assert [p.name for p in convert.snapshot_from_list({"kind": "List", "items": items}).pods] == [
        "c",
        "a",
        "b",
    ]


def test_typed_lists_and_other_kinds() -> None:
    pods = {"kind": "PodList", "items": [{"metadata": {"name": "a", "namespace": "ns"}}]}
    assert [p.name for p in convert.snapshot_from_list(pods).pods] == ["a"]
    nodes = {"kind": "NodeList", "items": [{"metadata": {"name": "n1"}}]}
    assert [n.name for n in convert.snapshot_from_list(nodes).nodes] == ["n1"]
    classes = {"kind": "PriorityClassList", "items": [{"metadata": {"name": "hi"}, "value": 3}]}
    assert [c.value for c in convert.snapshot_from_list(classes).priority_classes] == [3]
    other_kinds = {
        "kind": "List",
        "items": [
            {"kind": "Service", "metadata": {"name": "s"}},
            {"kind": "Event", "metadata": {}},  # not ours to check
            {"kind": "Node", "metadata": {"name": "n1"}},
        ],
    }
    snapshot = convert.snapshot_from_list(other_kinds)
    assert (snapshot.pods, [n.name for n in snapshot.nodes]) == ((), ["n1"])


@pytest.mark.parametrize("items", [None, []])
def test_an_empty_list_is_an_empty_cluster(items: object) -> None:
    assert convert.snapshot_from_list({"kind": "List", "items": items}) == Snapshot()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "^expected a List object, got an array$"),
        (42, "^expected a List object, got a number$"),
        ("kind: List", "^expected a List object, got a string$"),
        (None, "^expected a List object, got an empty document$"),
        ({"kind": "Pod"}, r"^expected kind List \(or NodeList, PodList, PriorityClassList\), got Pod$"),
        ({"kind": "ConfigMapList", "items": []}, "got ConfigMapList$"),
        ({"items": []}, "got no kind$"),
        ({"kind": ["List"], "items": []}, "got no kind$"),
        ({"kind": "List", "items": {}}, "^items is not a list$"),
        ({"kind": "List", "items": ["n1"]}, "^item 0 is not an object$"),
        ({"kind": "List", "items": [{"metadata": {"name": "a"}}]}, "^item 0 \\('a'\\) has no kind$"),
        ({"kind": "List", "items": [{"metadata": {}}]}, "^item 0 has no kind$"),
        (
            {"kind": "List", "items": [{"kind": "Node", "metadata": {"name": "n1"}}, {"kind": "Node"}]},
            "^Node item 1 has no metadata.name$",
        ),
        (
            {"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "a"}}]},
            "^Pod item 0 'a' has no metadata.namespace$",
        ),
        (
            {"kind": "List", "items": [{"kind": "PriorityClass"}]},
            "^PriorityClass item 0 has no metadata.name$",
        ),
        (
            {"kind": "PodList", "items": [{"metadata": {"namespace": "ns"}}]},
            "^Pod item 0 has no metadata.name$",
        ),
    ],
)
def test_bad_lists_are_named_errors(doc: Any, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        convert.snapshot_from_list(doc)


# -- request bodies -----------------------------------------------------------------------------


def test_binding_body() -> None:
    assert convert.binding_body("ns", "a", "n1") == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "a", "namespace": "ns"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    assert convert.binding_body("ns", "a", "n1", uid="u1")["metadata"] == {
        "name": "a",
        "namespace": "ns",
        "uid": "u1",
    }, "the API server binds only the pod with this uid"


def test_eviction_body() -> None:
    assert convert.eviction_body("ns", "a") == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "a", "namespace": "ns"},
    }, "the pod's own grace period applies"
    assert convert.eviction_body("ns", "a", 0)["deleteOptions"] == {"gracePeriodSeconds": 0}
    assert convert.eviction_body("ns", "a", 30, uid="u1")["deleteOptions"] == {
        "gracePeriodSeconds": 30,
        "preconditions": {"uid": "u1"},
    }
    assert convert.eviction_body("ns", "a", None, uid="u1")["deleteOptions"] == {
        "preconditions": {"uid": "u1"}
    }


def test_event_body() -> None:
    event = convert.event_body(
        namespace="ns", pod_name="a", pod_uid="u", type_="Warning", reason="FailedScheduling",
        message="x" * 2000, timestamp="2025-06-01T13:00:00Z", instance="host-1",
    )  # fmt: skip
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ns",
        "name": "a",
        "uid": "u",
    }
    assert event["metadata"] == {"generateName": "a.", "namespace": "ns"}
    assert (event["type"], event["reason"], len(event["message"])) == ("Warning", "FailedScheduling", 1024)
    assert event["source"] == {"component": "custom-scheduler"}
    assert (event["reportingComponent"], event["reportingInstance"]) == ("custom-scheduler", "host-1")
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2025-06-01T13:00:00Z"
    long_name = convert.event_body(
        namespace="ns", pod_name="p" * 253, pod_uid="u", type_="Normal", reason="Scheduled",
        message="m", timestamp="t", instance="h",
    )  # fmt: skip
    assert len(long_name["metadata"]["generateName"]) <= 253 - 5, "room for the server's suffix"


def test_status_patches() -> None:
    assert convert.pod_condition_patch(
        "PodScheduled", "False", "Unschedulable", "why", "2025-06-01T00:00:00Z"
    ) == {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "why",
                    "lastTransitionTime": "2025-06-01T00:00:00Z",
                    "lastProbeTime": None,
                }
            ]
        }
    }
    assert convert.nomination_patch("n2") == {"status": {"nominatedNodeName": "n2"}}
    assert convert.nomination_patch(None) == {"status": {"nominatedNodeName": None}}, "null clears it"


def test_another_schedulers_pod_keeps_where_it_is_and_what_it_requests() -> None:
    """SPEC 2: for other schedulers' pods the scheduler keeps only what the resource filter needs."""
    obj = with_(KUBECTL_POD, "spec.schedulerName", "default-scheduler")
    other = convert.other_pod_from_api(obj)
    assert (other.key, other.node_name, other.phase, other.scheduler_name) == (
        "ml/train-x7k2p",
        "n1",
        "Running",
        "default-scheduler",
    )
    assert other.constraints == Constraints(requests=(("cpu", 100),))
    assert other.annotations == {} and other.scheduled_message == ""
