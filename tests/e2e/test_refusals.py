"""Writes refused for one object, on the real control plane: that object's problem, never the scheduler's.

Admission refusals are made with ValidatingAdmissionPolicies (no webhook server needed): a bind,
a nomination or an event refused for one pod. The scheduler must go on for every other pod, say
each refusal once with the API server's words, show it on the pod where it can, and never evict
for a preemptor whose nomination was not written. Evictions refused by PodDisruptionBudgets (two
budgets on one pod: a 500) are said on the preemptor, and the victim is not left marked as going.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest_asyncio
import structlog

from custom_scheduler import convert
from tests.e2e.cluster import Cluster, condition, node_of, phase, unique
from tests.e2e.conftest import NodeFactory

LOW, HIGH = "refusal-low", "refusal-high"
_ADMISSION = "/apis/admissionregistration.k8s.io/v1"


@pytest_asyncio.fixture
async def classes(cluster: Cluster, namespace: str) -> None:
    """Two priority classes for these tests."""
    await cluster.create_priority_classes({LOW: 10, HIGH: 1000})


@pytest_asyncio.fixture
async def policy(cluster: Cluster, namespace: str) -> AsyncIterator[Any]:
    """`await policy(resources, operations, expression, message)`: refuse such requests in this namespace."""
    made: list[str] = []

    async def make(resources: list[str], operations: list[str], expression: str, message: str) -> None:
        name = unique("refuse")
        rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": operations, "resources": resources}]
        await cluster.create(
            f"{_ADMISSION}/validatingadmissionpolicies",
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": rules},
                    "validations": [{"expression": expression, "message": message}],
                },
            },
        )
        made.append(name)
        await cluster.create(
            f"{_ADMISSION}/validatingadmissionpolicybindings",
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {
                    "policyName": name,
                    "validationActions": ["Deny"],
                    "matchResources": {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                    },
                },
            },
        )

    yield make
    for name in made:
        await cluster.delete(f"{_ADMISSION}/validatingadmissionpolicybindings/{name}")
        await cluster.delete(f"{_ADMISSION}/validatingadmissionpolicies/{name}")


async def _policy_active(cluster: Cluster, method: str, path: str, body: object, content_type: str) -> bool:
    """Whether a dry run of this request is refused by a policy (policies take a moment to load)."""
    status, answer = await cluster.request(
        method, path, body, query=[("dryRun", "All")], content_type=content_type
    )
    return status == 422 and "ValidatingAdmissionPolicy" in str(answer)


async def _events(cluster: Cluster, namespace: str, pod: str, reason: str) -> list[dict[str, Any]] | None:
    found = [e for e in await cluster.events(namespace, pod) if e["reason"] == reason]
    return found or None


async def _bound(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if node_of(pod) else None


async def _running(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = await cluster.pod(namespace, name)
    return pod if phase(pod) == "Running" else None


async def test_a_refused_bind_is_said_once_shown_on_the_pod_and_not_planned_again_and_again(
    cluster: Cluster, namespace: str, nodes: NodeFactory, policy: Any
) -> None:
    _, label = await nodes(2)
    # A long answer: what the scheduler writes of it is cut to a sane length.
    long = "this pod may not be bound" + ", really" * 400
    await policy(["pods/binding"], ["CREATE"], "object.metadata.name != 'refused'", long)
    await cluster.create_pod(namespace, "refused")
    binding = convert.binding_body(namespace, "refused", "any-node")
    await cluster.wait_for(
        functools.partial(
            _policy_active,
            cluster,
            "POST",
            f"/api/v1/namespaces/{namespace}/pods/refused/binding",
            binding,
            "application/json",
        ),
        what="the policy to refuse binds",
    )
    with structlog.testing.capture_logs() as logs:
        async with cluster.scheduler(namespace, label) as passes:
            await cluster.create_pod(namespace, "fine")
            await cluster.wait_for(lambda: _bound(cluster, namespace, "fine"), what="the other pod bound")
            (told, *_) = await cluster.wait_for(
                lambda: _events(cluster, namespace, "refused", "FailedScheduling"),
                what="the refused pod told why",
            )
            start = len(passes.plans)
            await passes.more(12)
            attempts = sum(1 for p in passes.plans[start:] for b in p.binds if b.pod.endswith("/refused"))
    assert "this pod may not be bound" in told["message"] and told["message"].startswith("Binding rejected")
    pod = await cluster.pod(namespace, "refused")
    assert node_of(pod) == ""
    shown = condition(pod, "PodScheduled").get("message", "")
    assert "this pod may not be bound" in shown
    assert len(shown) == len(told["message"]) == convert.MESSAGE_LIMIT < len(long)
    refused = [e for e in logs if e["event"] == "bind_refused"]
    assert len(refused) == 1, refused  # said once, with the API server's words
    assert "this pod may not be bound" in refused[0]["error"]
    # Held back, with a growing delay: not planned on every one of the 12 passes.
    assert attempts <= 4, f"planned {attempts} times in 12 passes"


async def test_an_event_refused_for_one_pod_stops_nothing_else(
    cluster: Cluster, namespace: str, nodes: NodeFactory, policy: Any
) -> None:
    _, label = await nodes(2)
    await policy(
        ["events"], ["CREATE"], "object.involvedObject.name != 'a-quiet'", "no events about this pod"
    )
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "a-quiet."},
        "involvedObject": {"kind": "Pod", "name": "a-quiet", "namespace": namespace},
    }
    await cluster.wait_for(
        functools.partial(
            _policy_active,
            cluster,
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            event,
            "application/json",
        ),
        what="the policy to refuse events",
    )
    with structlog.testing.capture_logs() as logs:
        async with cluster.scheduler(namespace, label) as passes:
            for name in ("a-quiet", "b-loud", "c-late"):
                await cluster.create_pod(namespace, name)
            for name in ("a-quiet", "b-loud"):
                await cluster.wait_for(
                    functools.partial(_bound, cluster, namespace, name), what=f"{name} bound"
                )
            # Two nodes, three pods (placed in name order): the third waits with a reason.
            await cluster.wait_for(
                lambda: _events(cluster, namespace, "c-late", "FailedScheduling"), what="the third told why"
            )
            await passes.more(3)
    assert await _events(cluster, namespace, "b-loud", "Scheduled")
    assert not await _events(cluster, namespace, "a-quiet", "Scheduled")
    refused = [e for e in logs if e["event"] == "event_refused"]
    assert len(refused) == 1 and "no events about this pod" in refused[0]["error"], refused


async def test_nobody_is_evicted_for_a_preemptor_whose_nomination_was_refused(
    cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None, policy: Any
) -> None:
    (node,), label = await nodes(1)
    await cluster.create_pod(namespace, "victim", priority_class=LOW, node=node)
    await cluster.wait_for(lambda: _running(cluster, namespace, "victim"), what="the victim to run")
    await cluster.create_pod(namespace, "urgent", priority_class=HIGH)
    await policy(
        ["pods/status"],
        ["UPDATE"],
        "object.metadata.name != 'urgent' || object.status.?nominatedNodeName.orValue('') == ''",
        "no nomination for this pod",
    )
    await cluster.wait_for(
        functools.partial(
            _policy_active,
            cluster,
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/urgent/status",
            convert.nomination_patch(node),
            "application/strategic-merge-patch+json",
        ),
        what="the policy to refuse nominations",
    )
    with structlog.testing.capture_logs() as logs:
        async with cluster.scheduler(namespace, label) as passes:
            await cluster.wait_for(
                lambda: _logged(logs, "nomination_refused"), what="the nomination to be tried and refused"
            )
            await passes.more(8)
            victim = await cluster.pod(namespace, "victim")
    assert not victim["metadata"].get("deletionTimestamp"), "evicted for a preemptor without a nomination"
    assert condition(victim, "DisruptionTarget").get("status") != "True"
    assert [e for e in logs if e["event"] == "pod_evicted"] == []
    assert len([e for e in logs if e["event"] == "nomination_refused"]) == 1


async def _logged(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]] | None:
    return [e for e in logs if e["event"] == event] or None


async def test_an_eviction_refused_with_a_500_is_said_on_the_preemptor_and_leaves_no_mark(
    cluster: Cluster, namespace: str, nodes: NodeFactory, classes: None
) -> None:
    (node,), label = await nodes(1)
    await cluster.create_pod(namespace, "victim", priority_class=LOW, node=node)
    await cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/victim",
        {"metadata": {"labels": {"app": "twice"}}},
        content_type="application/merge-patch+json",
    )
    for name in ("one", "two"):  # two budgets on one pod: the Eviction API answers 500
        budget = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "twice"}}},
        }
        await cluster.create_object(budget, namespace)
    await cluster.wait_for(lambda: _running(cluster, namespace, "victim"), what="the victim to run")
    async with cluster.scheduler(namespace, label) as passes:
        await cluster.create_pod(namespace, "urgent", priority_class=HIGH)
        (told, *_) = await cluster.wait_for(
            lambda: _refusal_told(cluster, namespace), what="the preemptor told its eviction was refused"
        )
        await passes.more(4)
        urgent = await cluster.pod(namespace, "urgent")
        victim = await cluster.pod(namespace, "victim")
    assert f"eviction of {namespace}/victim from node {node} was refused" in told["message"]
    assert "more than one PodDisruptionBudget" in told["message"], "the API server's words"
    assert "more than one PodDisruptionBudget" in condition(urgent, "PodScheduled").get("message", "")
    assert not victim["metadata"].get("deletionTimestamp")
    assert condition(victim, "DisruptionTarget").get("status") != "True", "a pod that stays is not marked"
    refusals = [e for e in await cluster.events(namespace, "urgent") if "was refused" in e["message"]]
    assert len(refusals) == 1, "said once, not every pass"


async def _refusal_told(cluster: Cluster, namespace: str) -> list[dict[str, Any]] | None:
    events = [
        e
        for e in await cluster.events(namespace, "urgent")
        if e["type"] == "Warning" and "was refused" in e["message"]
    ]
    return events or None
