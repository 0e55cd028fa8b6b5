"""The boundary: API objects to the model (every field may be missing or wrong), and request bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custom_scheduler import convert
from custom_scheduler.convert import ConvertError
from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE, Node, Pod, PriorityClass

DATA = Path(__file__).parent / "data"


def test_a_realistic_pod_keeps_only_what_scheduling_needs() -> None:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u1",
            "creationTimestamp": "2025-06-01T13:00:00Z",
            "deletionTimestamp": "2025-06-01T13:05:00Z",
            "annotations": {GROUP_NAME: "g", MIN_AVAILABLE: "2", "other": "dropped"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "schedulerName": "custom-scheduler",
            "nodeName": "n1",
            "priority": 7,
            "priorityClassName": "low",
            "preemptionPolicy": "Never",
            "containers": [{"name": "c"}],
        },
        "status": {
            "phase": "Running",
            "nominatedNodeName": "n2",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m"}
            ],
        },
    }
    assert convert.pod_from_api(obj) == Pod(
        namespace="ns",
        name="a",
        uid="u1",
        scheduler_name="custom-scheduler",
        phase="Running",
        node_name="n1",
        deleting=True,
        deletion_time=1748783100.0,
        creation=1748782800.0,
        priority=7,
        priority_class="low",
        preemption_policy="Never",
        nominated_node="n2",
        annotations={GROUP_NAME: "g", MIN_AVAILABLE: "2"},
        scheduled_reason="Unschedulable",
        scheduled_message="m",
    )


@pytest.mark.parametrize(
    "obj",
    [
        {"metadata": {"name": "a", "namespace": "ns"}},
        {"metadata": {"name": "a", "namespace": "ns"}, "spec": None, "status": None},
        {"metadata": {"name": "a", "namespace": "ns", "annotations": None}, "spec": {"priority": "high"}},
        {
            "metadata": {"name": "a", "namespace": "ns", "creationTimestamp": "yesterday"},
            "status": {"conditions": "x"},
        },
        {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"priority": True, "nodeName": 3}},
    ],
)
def test_missing_or_wrong_fields_count_as_missing(obj: dict[str, Any]) -> None:
    pod = convert.pod_from_api(obj)
    assert (pod.key, pod.priority, pod.node_name, pod.phase, pod.creation) == (
        "ns/a",
        None,
        "",
        "Pending",
        0.0,
    )
    assert pod.scheduler_name == "default-scheduler"  # the API server's default


def test_nodes_and_classes() -> None:
    ready = {
        "metadata": {"name": "n1", "labels": {"a": "b"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert convert.node_from_api(ready) == Node("n1", labels={"a": "b"}, ready=True)
    cordoned = {"metadata": {"name": "n2"}, "spec": {"unschedulable": True}}
    assert convert.node_from_api(cordoned) == Node("n2", ready=False, unschedulable=True)
    klass = {"metadata": {"name": "hi"}, "value": 5, "globalDefault": True, "preemptionPolicy": "Never"}
    assert convert.priority_class_from_api(klass) == PriorityClass("hi", 5, True, "Never")
    assert convert.priority_class_from_api({"metadata": {"name": "x"}}) == PriorityClass("x", 0)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {"namespace": "ns"}}, "has no metadata.name"),
        ({"metadata": {"name": "a"}}, "has no metadata.namespace"),
        ({}, "has no metadata.name"),
        ("not an object", "is not an object"),
    ],
)
def test_required_fields(obj: Any, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        convert.pod_from_api(obj)


def test_a_kubectl_list_becomes_a_snapshot() -> None:
    snapshot = convert.snapshot_from_list(json.loads((DATA / "demo-two.json").read_text()))
    assert [n.name for n in snapshot.nodes] == ["n1", "n2"]
    assert [p.name for p in snapshot.pods] == ["test-pod-low-pri", "job-two-highpri-a", "job-two-highpri-b"]
    assert {c.name: c.value for c in snapshot.priority_classes} == {
        "high-priority": 1000000,
        "low-priority": 10,
    }


def test_typed_lists_and_other_kinds() -> None:
    pods = {"kind": "PodList", "items": [{"metadata": {"name": "a", "namespace": "ns"}}]}
    assert [p.name for p in convert.snapshot_from_list(pods).pods] == ["a"]
    mixed = {"kind": "List", "items": [{"kind": "Service", "metadata": {"name": "s"}}]}
    assert convert.snapshot_from_list(mixed).pods == ()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a List object, got list"),
        ({"kind": "Pod"}, "expected kind List, got Pod"),
        ({"kind": "List", "items": {}}, "items is not a list"),
        ({"kind": "List", "items": [{"metadata": {"name": "a"}}]}, "item 0 has no kind"),
        (
            {"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": "a"}}]},
            "Pod item 0 has no metadata.namespace",
        ),
    ],
)
def test_bad_lists_are_named_errors(doc: Any, message: str) -> None:
    with pytest.raises(ConvertError, match=message):
        convert.snapshot_from_list(doc)


def test_request_bodies() -> None:
    assert convert.binding_body("ns", "a", "n1")["target"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "n1",
    }
    assert "deleteOptions" not in convert.eviction_body("ns", "a"), "the pod's own grace period applies"
    assert convert.eviction_body("ns", "a", 0)["deleteOptions"] == {"gracePeriodSeconds": 0}
    patch = convert.pod_condition_patch(
        "PodScheduled", "False", "Unschedulable", "why", "2025-06-01T00:00:00Z"
    )
    assert patch["status"]["conditions"][0]["message"] == "why"
    assert convert.nomination_patch(None) == {"status": {"nominatedNodeName": None}}
    event = convert.event_body(
        namespace="ns", pod_name="a", pod_uid="u", type_="Warning", reason="FailedScheduling",
        message="x" * 2000, timestamp="t", instance="h",
    )  # fmt: skip
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ns",
        "name": "a",
        "uid": "u",
    }
    assert len(event["message"]) == 1024 and event["source"] == {"component": "custom-scheduler"}
