"""`custom-scheduler status`: every gang, waiting pod and node, with the plan's reasons; a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_scheduler.__main__ import main
from custom_scheduler.settings import Settings, parse_selector
from custom_scheduler.status import GangRow, NodeRow, PodRow, age, render, status_of
from tests.unit.builders import node, pclass, pod, snap

DATA = Path(__file__).parent / "data"
NOW = 1_000_000.0
HELD = "hold a pod of equal or higher priority"

# A little of everything: a gang short of members, a running gang, a preemptor nominated to the
# node of its terminating victim, a pod the next pass binds, a gated pod, and nodes of each state.
CLUSTER = snap(
    node("n1"),
    node("n2"),
    node("n3"),
    node("n4", ready=False),
    node("n5", cordoned=True),
    node("n6", labels={"pool": "other"}),
    pclass("high", 1000),
    pod("run-0", on="n1", gang="run", min_available=2, t=NOW - 7200),
    pod("run-1", on="n2", gang="run", min_available=2, t=NOW - 7200),
    pod("low", on="n3", priority=1, deleted_at=NOW + 20, t=NOW - 90_000),
    pod("hi", cls="high", nominated="n3", t=NOW - 30),
    pod("train-0", gang="train", min_available=3, t=NOW - 330),
    pod("train-1", gang="train", min_available=3, t=NOW - 300),
    pod("gated", gated=True, t=NOW - 5),
    pod("theirs", scheduler="default-scheduler", t=NOW - 5),
    now=NOW,
)
SETTINGS = Settings(node_selector=parse_selector("pool!=other"))
QUORUM = "gang default/train: 2 of 3 required members exist"
NOMINATED = "nominated to node n3; waiting for default/low to terminate"
GATED = "scheduling gates (spec.schedulingGates): not scheduled until they are removed"


def test_every_gang_pod_and_node_with_its_state_and_reason() -> None:
    status = status_of(CLUSTER, settings=SETTINGS)
    assert status.gangs == (
        GangRow("default/train", 0, 2, 3, NOW - 330, QUORUM),
        GangRow("default/run", 2, 0, 2, 0.0, "running"),
    )
    assert status.pods == (
        PodRow("default/hi", "nominated", "", 1000, "n3", NOW - 30, NOMINATED),
        PodRow("default/train-0", "waiting", "train", 0, "", NOW - 330, QUORUM),
        PodRow("default/train-1", "waiting", "train", 0, "", NOW - 300, QUORUM),
        PodRow("default/gated", "gated", "", 0, "", NOW - 5, GATED),
    )
    assert status.nodes == (
        NodeRow("n3", "reserved", ("default/low",), "for default/hi; default/low terminating"),
        NodeRow("n1", "ours", ("default/run-0",), ""),
        NodeRow("n2", "ours", ("default/run-1",), ""),
        NodeRow("n4", "not eligible", (), "not Ready"),
        NodeRow("n5", "not eligible", (), "cordoned (spec.unschedulable)"),
        NodeRow("n6", "not eligible", (), "not selected by --node-selector"),
    )


def test_the_table_reads_at_a_glance() -> None:
    assert render(status_of(CLUSTER, settings=SETTINGS)) == "\n".join(
        [
            "scheduler custom-scheduler (all namespaces): nodes: 1 reserved, 2 ours, 3 not eligible; "
            "pods not running: 1 nominated, 2 waiting, 1 gated; gangs waiting: 1 of 2",
            "",
            "GANG            BOUND   PENDING   MIN-AVAILABLE   WAITING   REASON",
            f"default/train   0       2         3               5m30s     {QUORUM}",
            "default/run     2       0         2               -         running",
            "",
            "POD               STATE       GANG    PRIORITY   NODE   WAITING   REASON",
            f"default/hi        nominated   -       1000       n3     30s       {NOMINATED}",
            f"default/train-0   waiting     train   0          -      5m30s     {QUORUM}",
            f"default/train-1   waiting     train   0          -      5m        {QUORUM}",
            f"default/gated     gated       -       0          -      5s        {GATED}",
            "",
            "NODE   STATE          PODS            DETAIL",
            "n3     reserved       default/low     for default/hi; default/low terminating",
            "n1     ours           default/run-0   -",
            "n2     ours           default/run-1   -",
            "n4     not eligible   -               not Ready",
            "n5     not eligible   -               cordoned (spec.unschedulable)",
            "n6     not eligible   -               not selected by --node-selector",
            "",
        ]
    )


def test_a_pod_the_next_pass_binds_and_a_free_node() -> None:
    status = status_of(snap(node("n1"), node("n2"), pod("a", t=NOW - 61), now=NOW), settings=Settings())
    (row,) = status.pods
    assert (row.state, row.node, row.reason) == (
        "binds next pass",
        "n1",
        "fits on node n1: the next pass binds it (if it stays so, is the scheduler running?)",
    )
    assert [(n.node, n.state) for n in status.nodes] == [("n1", "free"), ("n2", "free")]
    assert status.summary()["pods"] == {"nominated": 0, "binds next pass": 1, "waiting": 0, "gated": 0}


def test_an_empty_cluster_and_one_namespace() -> None:
    status = status_of(snap(pod("a"), pod("b", ns="other"), now=NOW), settings=Settings(namespace="other"))
    assert [(p.pod, p.reason) for p in status.pods] == [("other/b", "no nodes available to schedule pods")]
    assert render(status).splitlines()[0] == (
        "scheduler custom-scheduler (other): nodes: none; pods not running: 1 waiting; gangs waiting: 0 of 0"
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (312, "5m12s"),
        (3600, "1h"),
        (3720, "1h2m"),
        (86400 * 2 + 3600 * 3, "2d3h"),
    ],
)
def test_ages_read_as_kubectls(seconds: int, shown: str) -> None:
    assert age(NOW - seconds, NOW) == shown


def test_an_unknown_time_has_no_age() -> None:
    assert (age(0.0, NOW), age(NOW, 0.0), age(NOW + 5, NOW)) == ("-", "-", "0s")


# -- the command ------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_status_of_a_snapshot_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "status",
        "--snapshot",
        str(DATA / "demo-two.json"),
        "-o",
        "json",
        "--now",
        "2025-06-01T13:00:00Z",
    )
    assert (code, err) == (0, "")
    status = json.loads(out)
    assert list(status) == ["scheduler", "namespace", "now", "summary", "gangs", "pods", "nodes"]
    assert (status["scheduler"], status["namespace"], status["now"]) == (
        "custom-scheduler",
        None,
        "2025-06-01T13:00:00Z",
    )
    assert [(g["gang"], g["bound"], g["pending"], g["min_available"]) for g in status["gangs"]] == [
        ("default/job-two-highpri", 0, 2, 2)
    ]
    assert [(p["pod"], p["state"], p["node"]) for p in status["pods"]] == [
        ("default/job-two-highpri-a", "nominated", "n2"),
        ("default/job-two-highpri-b", "nominated", "n1"),
    ]
    assert (
        status["pods"][1]["reason"]
        == "nominated to node n1; waiting for default/test-pod-low-pri to terminate"
    )
    assert [(n["node"], n["state"], n["pods"]) for n in status["nodes"]] == [
        ("n1", "ours", ["default/test-pod-low-pri"]),
        ("n2", "free", []),
    ]
    assert status["summary"]["nodes"] == {"reserved": 0, "ours": 1, "free": 1, "not eligible": 0}


def test_status_of_a_snapshot_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--snapshot", str(DATA / "demo-one.yaml"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("scheduler custom-scheduler (all namespaces): nodes: 1 ours, 1 free;")
    assert lines[2].split() == ["GANG", "BOUND", "PENDING", "MIN-AVAILABLE", "WAITING", "REASON"]
    assert lines[3].startswith("default/job-two-lowpri   0       2         2 ")


def test_a_snapshot_without_nodes_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps({"kind": "List", "items": []}))
    for command in ("plan", "status"):
        code, _, err = run(capsys, command, "--snapshot", str(path))
        assert (code, err) == (
            0,
            "custom-scheduler: warning: the snapshot has no nodes "
            "(take it with `kubectl get nodes,pods,priorityclasses -A -o json`)\n",
        )


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--now", "yesterday"], "argument --now: 'yesterday' is not an RFC 3339 time"),
        (["--now", "2025-06-01T13:00:00"], "argument --now: '2025-06-01T13:00:00' has no time zone"),
        (["-o", "yaml"], "argument -o/--output: invalid choice: 'yaml'"),
    ],
)
def test_bad_flags_are_one_line(capsys: pytest.CaptureFixture[str], flags: list[str], problem: str) -> None:
    code, out, err = run(capsys, "status", "--snapshot", str(DATA / "demo-one.yaml"), *flags)
    assert (code, out) == (2, "") and problem in err.splitlines()[-1]


def test_a_snapshot_and_a_cluster_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status", "--snapshot", str(DATA / "demo-one.yaml"), "--context", "c")
    assert (code, out, err) == (
        2,
        "",
        "custom-scheduler: --snapshot reads a file, --kubeconfig and --context a cluster: give one\n",
    )
