"""What an operator meets first, on the real control plane: `make run` as the README shows it, and
events under the scheduler's own name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio

from tests.e2e.cluster import Cluster, node_of
from tests.e2e.conftest import NodeFactory
from tests.harness.controlplane import REPO, ControlPlane, free_port


async def _get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        return 0, str(error)


async def test_make_run_serves_metrics_and_its_output_is_the_readmes_jq_input(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory, tmp_path: Path
) -> None:
    (node,), label = await nodes(1)
    port = free_port()
    args = (
        f"--kubeconfig={control_plane.kubeconfig} --namespace={namespace} "
        f"--node-selector={label[0]}={label[1]} --interval=1 --health-port={port}"
    )
    out = tmp_path / "make-run.out"
    with out.open("wb") as stdout:
        make = await anyio.open_process(
            ["make", "run", f"ARGS={args}"],
            cwd=REPO,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # make and the scheduler: stopped together, as Ctrl-C stops them
            # As typed in a shell: not a sub-make of `make test` (which would say "Entering directory").
            env={k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")},
        )
    try:
        await cluster.wait_for(
            lambda: _ready(port), deadline=60, what="make run to serve /readyz on its health port"
        )
        await cluster.create_pod(namespace, "demo")

        async def bound() -> str:
            return node_of(await cluster.pod(namespace, "demo"))

        assert await cluster.wait_for(bound, what="make run to bind the pod") == node
        status, metrics = await _get(port, "/metrics")
        assert status == 200
        assert (
            'scheduler_schedule_attempts_total{profile="custom-scheduler",result="scheduled"} 1.0' in metrics
        )
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        with anyio.fail_after(30):
            await make.wait()

    async def stopped() -> bool:
        # make may exit before the scheduler it ran has written its last line.
        return '"event": "scheduler_stopped"' in await anyio.Path(out).read_text()

    await cluster.wait_for(stopped, what="the scheduler to stop on SIGTERM")
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["event"] for line in lines), "every line of stdout a log line"
    events = [json.loads(line)["event"] for line in lines]
    assert events[0] == "health_serving" and "scheduler_stopped" in events
    # The README's recipe, as written, on what `make run` printed.
    where = await anyio.run_process(
        ["jq", "-r", r'select(.event=="pod_bound") | "\(.timestamp) \(.pod) -> \(.node)"'],
        input=out.read_bytes(),
    )
    assert where.stdout.decode().rstrip().endswith(f" {namespace}/demo -> {node}"), where.stdout


async def _ready(port: int) -> bool:
    return (await _get(port, "/readyz"))[0] == 200


async def test_events_are_reported_under_the_schedulers_own_name(
    cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    (node,), label = await nodes(1)
    await cluster.create_pod(namespace, "first", scheduler="team-x")
    await cluster.create_pod(namespace, "second", scheduler="team-x")
    async with cluster.scheduler(namespace, label, scheduler_name="team-x"):

        async def told() -> list[tuple[str, str, str]] | None:
            events = [
                (e["reason"], e["source"].get("component", ""), e.get("reportingComponent", ""))
                for e in await cluster.events(namespace)
            ]
            reasons = {r for r, _, _ in events}
            return events if {"Scheduled", "FailedScheduling"} <= reasons else None

        events = await cluster.wait_for(told, what="a Scheduled and a FailedScheduling event")
    assert {(source, reporter) for _, source, reporter in events} == {("team-x", "team-x")}
    assert node in {node_of(await cluster.pod(namespace, name)) for name in ("first", "second")}


async def _status(plane: ControlPlane, namespace: str, label: tuple[str, str], *flags: str) -> str:
    done = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "custom_scheduler",
            "status",
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={namespace}",
            f"--node-selector={label[0]}={label[1]}",
            *flags,
        ],
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b""), done.stderr.decode()
    return done.stdout.decode()


async def test_status_on_the_live_cluster(
    control_plane: ControlPlane, cluster: Cluster, namespace: str, nodes: NodeFactory
) -> None:
    names, label = await nodes(2)
    await cluster.create_pod(namespace, "single")
    await cluster.create_pod(namespace, "train-0", gang="train", min_available=3)
    quorum = f"gang {namespace}/train: 1 of 3 required members exist"

    # No scheduler running: the next pass would bind the single pod (and it stays unbound: a clue).
    status = json.loads(await _status(control_plane, namespace, label, "-o", "json"))
    assert (status["scheduler"], status["namespace"]) == ("custom-scheduler", namespace)
    pods = {p["pod"]: (p["state"], p["node"], p["reason"]) for p in status["pods"]}
    assert pods[f"{namespace}/single"][:2] == ("binds next pass", names[0])
    assert pods[f"{namespace}/train-0"] == ("waiting", "", quorum)
    assert [
        (g["gang"], g["bound"], g["pending"], g["min_available"], g["reason"]) for g in status["gangs"]
    ] == [(f"{namespace}/train", 0, 1, 3, quorum)]
    ours = {n["node"]: n["state"] for n in status["nodes"] if n["node"] in names}
    assert ours == dict.fromkeys(names, "free")
    assert pods[f"{namespace}/single"][0] == "binds next pass"

    async with cluster.scheduler(namespace, label):

        async def bound() -> str:
            return node_of(await cluster.pod(namespace, "single"))

        node = await cluster.wait_for(bound, what="the scheduler to bind the single pod")
    status = json.loads(await _status(control_plane, namespace, label, "-o", "json"))
    assert [p["pod"] for p in status["pods"]] == [f"{namespace}/train-0"]
    rows = {n["node"]: (n["state"], n["pods"]) for n in status["nodes"] if n["node"] in names}
    assert rows[node] == ("ours", [f"{namespace}/single"])
    table = await _status(control_plane, namespace, label)
    assert table.startswith(f"scheduler custom-scheduler ({namespace}): nodes: 1 ours, 1 free")
    assert f"{namespace}/train   0       1         3 " in table
