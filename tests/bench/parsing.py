"""`make bench-parsing`: why the informers read raw JSON into slim dataclasses, in figures.

Parses a realistic PodList (managedFields, containers, status) two ways: the generated client's
deserializer into `V1Pod` models, and orjson plus `convert.pod_from_api` into the cached `Pod`.
Time per pod and memory held per pod (tracemalloc), written to BENCHMARKS.md's "Parsing" section.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
from kubernetes_asyncio.client import ApiClient

from custom_scheduler.convert import pod_from_api
from tests.bench.planner import machine, write_section

COUNT = 5_000


def realistic_pod(i: int) -> dict[str, Any]:
    """A pod as the API server sends it for a Job's pod, managedFields and all."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"train-{i}",
            "generateName": "train-",
            "namespace": "ml",
            "uid": f"0b0c8e1e-{i:04d}-4d0f-9a55-1f4f5d1c{i:04d}",
            "resourceVersion": str(100000 + i),
            "creationTimestamp": "2025-06-01T13:00:00Z",
            "labels": {"batch.kubernetes.io/job-name": "train", "controller-uid": "abc", "job-name": "train"},
            "annotations": {
                "custom-scheduling.k8s.io/group-name": "train",
                "custom-scheduling.k8s.io/min-available": "4",
            },
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "abc", "controller": True}
            ],
            "finalizers": ["batch.kubernetes.io/job-tracking"],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2025-06-01T13:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {".": {}, "f:job-name": {}}},
                        "f:spec": {"f:containers": {}},
                    },
                }
            ],
        },
        "spec": {
            "schedulerName": "custom-scheduler",
            "priorityClassName": "high-priority",
            "priority": 1000000,
            "preemptionPolicy": "PreemptLowerPriority",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/train:1.2.3",
                    "args": ["--epochs", "10"],
                    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
                    "env": [{"name": "RANK", "value": str(i)}],
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                }
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
            ],
        },
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "waiting"}
            ],
        },
    }


def _measure(parse: Callable[[bytes], list[Any]], raw: bytes) -> tuple[float, float]:
    """(microseconds per pod, KiB held per pod) for one way of parsing."""
    gc.collect()
    started = time.perf_counter()
    parse(raw)
    seconds = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    held = parse(raw)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held
    return seconds / COUNT * 1e6, size / COUNT / 1024


async def _measure_both() -> tuple[float, float, float, float]:
    raw = json.dumps(
        {"kind": "PodList", "apiVersion": "v1", "items": [realistic_pod(i) for i in range(COUNT)]}
    ).encode()
    async with ApiClient() as client:
        deserialize = client._ApiClient__deserialize  # the client's own path for a response body

        def models(data: bytes) -> list[Any]:
            return list(deserialize(json.loads(data), "V1PodList").items)

        def slim(data: bytes) -> list[Any]:
            return [pod_from_api(obj) for obj in orjson.loads(data)["items"]]

        print(f"parsing {COUNT:,} realistic pods two ways", file=sys.stderr)
        return (*_measure(models, raw), *_measure(slim, raw))


def main() -> int:
    """Measure both ways and write the section."""
    model_us, model_kib, slim_us, slim_kib = asyncio.run(_measure_both())
    section = "\n".join(
        [
            "## Parsing",
            "",
            f"`make bench-parsing` on {datetime.date.today().isoformat()}: {machine()}.",
            f"{COUNT:,} pods shaped like a Job's pods as the API server sends them (managedFields,",
            "containers, volumes, status).",
            "",
            "| how | time per pod | memory held per pod |",
            "| --- | ---: | ---: |",
            f"| generated client: JSON into `V1Pod` models | {model_us:.0f} us | {model_kib:.1f} KiB |",
            f"| orjson, then `convert.pod_from_api` into the cached `Pod` | {slim_us:.1f} us | "
            f"{slim_kib:.2f} KiB |",
            "",
            "So the informers read lists and watch streams raw (`_preload_content=False`) and keep slim",
            f"`Pod`s: {model_us / slim_us:.0f}x faster, {model_kib / slim_kib:.0f}x smaller per cached pod.",
            "",
        ]
    )
    write_section(section, title="Parsing")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
