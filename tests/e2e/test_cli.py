"""The command line against the real control plane: live `plan` reads and writes nothing; the demo runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import anyio

from tests.e2e.cluster import Cluster, condition, node_of
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import REPO, ControlPlane


async def test_live_plan_prints_a_pass_and_changes_nothing(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    (node,), label = await nodes(1)
    await cluster.create_pod(namespace, "waiting")
    command = [
        sys.executable, "-m", "custom_scheduler", "plan", f"--kubeconfig={control_plane.kubeconfig}",
        f"--namespace={namespace}", f"--node-selector={label[0]}={label[1]}",
    ]  # fmt: skip
    done = await anyio.run_process(command, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {
        "binds": [{"pod": f"{namespace}/waiting", "node": node}],
        "nominations": [],
        "evictions": [],
        "unschedulable": [],
    }
    pod = await cluster.pod(namespace, "waiting")
    assert node_of(pod) == "" and condition(pod, "PodScheduled") == {}
    assert await cluster.events(namespace) == []


def test_make_demo_plays_its_scenarios(control_plane: ControlPlane) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.demo"],  # as `make demo` runs it
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "result: neither Job pod is bound" in done.stdout
    assert "result: the low pod is gone" in done.stdout
    assert "test-pod-plain waits: the only free node carries a taint" in done.stdout
    assert "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }" in done.stdout
    assert "result: test-pod-tolerant (it tolerates the taint) runs on control-plane-1" in done.stdout
    assert "custom-scheduler stopped on SIGTERM, exit status 0" in done.stdout
    # The scheduler's log is this run's own file, named in the account.
    log = re.search(r"logging JSON lines to (\S+custom-scheduler-demo-\S+\.log)", done.stdout)
    assert log and '"event": "pod_bound"' in Path(log[1]).read_text(), done.stdout[-2000:]
