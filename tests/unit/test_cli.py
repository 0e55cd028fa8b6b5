"""`custom-scheduler plan --snapshot`: SPEC section 10's output, flags honoured, bad input as one line."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from custom_scheduler.__main__ import build_parser, main, settings_from_args
from custom_scheduler.model import GROUP_NAME, MIN_AVAILABLE
from custom_scheduler.settings import Settings, parse_selector

DATA = Path(__file__).parent / "data"
DEMO_TWO = {
    "binds": [],
    "nominations": [
        {"pod": "default/job-two-highpri-a", "node": "n2"},
        {"pod": "default/job-two-highpri-b", "node": "n1"},
    ],
    "evictions": [
        {"pod": "default/test-pod-low-pri", "node": "n1", "preemptor": "default/job-two-highpri-b"}
    ],
    "unschedulable": [],
}
DEMO_ONE_REASON = (
    "gang default/job-two-lowpri needs 2 nodes, 1 can be had: "
    "1 node(s) hold a pod of equal or higher priority."
)
DEMO_ONE = {
    "binds": [],
    "nominations": [],
    "evictions": [],
    "unschedulable": [
        {"pod": "default/job-two-lowpri-q9mfd", "reason": DEMO_ONE_REASON},
        {"pod": "default/job-two-lowpri-x7k2p", "reason": DEMO_ONE_REASON},
    ],
}
NOTHING: dict[str, list[Any]] = {"binds": [], "nominations": [], "evictions": [], "unschedulable": []}


def node(
    name: str, labels: dict[str, str] | None = None, *, cordoned: bool = False, ready: bool = True
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(name: str, ns: str = "default", scheduler: str = "custom-scheduler") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}",
            "creationTimestamp": "2025-06-01T00:00:00Z",
        },
        "spec": {"schedulerName": scheduler, "containers": [{"name": "main", "image": "pause"}]},
        "status": {"phase": "Pending"},
    }


def cluster(*items: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": list(items)}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


NO_NODES = (
    "custom-scheduler: warning: the snapshot has no nodes "
    "(take it with `kubectl get nodes,pods,priorityclasses -A -o json`)\n"
)


def plan_of(capsys: pytest.CaptureFixture[str], path: str, *flags: str, warned: str = "") -> dict[str, Any]:
    code, out, err = run(capsys, "plan", "--snapshot", path, *flags)
    assert (code, err) == (0, warned), err
    assert out.endswith("\n") and out.count("\n") == 1, "one JSON object on one line"
    result: dict[str, Any] = json.loads(out)
    assert list(result) == ["binds", "nominations", "evictions", "unschedulable"]
    return result


def write(tmp_path: Path, doc: object, name: str = "snap.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def stdin_of(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


# -- SPEC answers -------------------------------------------------------------------------------


def test_demo_two_from_a_json_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_of(capsys, str(DATA / "demo-two.json")) == DEMO_TWO


def test_demo_one_from_kubectls_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_of(capsys, str(DATA / "demo-one.yaml")) == DEMO_ONE


def test_yaml_and_json_give_the_same_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump(json.loads((DATA / "demo-two.json").read_text())))
    assert plan_of(capsys, str(path)) == DEMO_TWO


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin_of(monkeypatch, (DATA / "demo-one.yaml").read_bytes())
    assert plan_of(capsys, "-") == DEMO_ONE


def test_a_pending_pod_goes_to_the_first_ready_node_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, cluster(node("n2"), node("n1"), pod("a")))
    assert plan_of(capsys, path) == {**NOTHING, "binds": [{"pod": "default/a", "node": "n1"}]}


def test_another_schedulers_pod_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, cluster(node("n1"), pod("theirs", scheduler="default-scheduler")))
    assert plan_of(capsys, path) == NOTHING


def test_cordoned_and_not_ready_nodes_are_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = (node("n1", cordoned=True), node("n2", ready=False), node("n3"))
    path = write(tmp_path, cluster(*nodes, pod("a")))
    assert plan_of(capsys, path)["binds"] == [{"pod": "default/a", "node": "n3"}]
    path = write(tmp_path, cluster(*nodes[:2], pod("a")))
    result = plan_of(capsys, path)
    assert (result["binds"], [u["pod"] for u in result["unschedulable"]]) == ([], ["default/a"])


def test_flags_are_honoured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = cluster(
        node("n1"),
        node("n2", {"pool": "gpu"}),
        node("n3", {"pool": "gpu"}, cordoned=True),
        pod("a"),
        pod("b", ns="other"),
        pod("c", scheduler="team-x"),
    )
    path = write(tmp_path, doc)
    assert plan_of(capsys, path)["binds"] == [
        {"pod": "default/a", "node": "n1"},
        {"pod": "other/b", "node": "n2"},
    ]
    assert plan_of(capsys, path, "--namespace", "other")["binds"] == [{"pod": "other/b", "node": "n1"}]
    assert plan_of(capsys, path, "--node-selector", "pool=gpu")["binds"] == [
        {"pod": "default/a", "node": "n2"}
    ]
    assert plan_of(capsys, path, "--namespace", "other", "--node-selector", "pool in (gpu)")["binds"] == [
        {"pod": "other/b", "node": "n2"}
    ]
    assert plan_of(capsys, path, "--scheduler-name", "team-x")["binds"] == [
        {"pod": "default/c", "node": "n1"}
    ]


def test_the_real_entry_point_reads_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "custom_scheduler", "plan", "--snapshot", "-"],
        input=(DATA / "demo-two.json").read_bytes(),
        capture_output=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout) == DEMO_TWO


def test_a_byte_order_mark_is_read_past(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(b"\xef\xbb\xbf" + (DATA / "demo-two.json").read_bytes())
    assert plan_of(capsys, str(path)) == DEMO_TWO
    path.write_text((DATA / "demo-one.yaml").read_text(), encoding="utf-16")  # PowerShell's `>`
    assert plan_of(capsys, str(path)) == DEMO_ONE


def test_many_shallow_brackets_are_not_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text("kind: List\nitems: []\nmetadata: {fields: [" + "{}, [], " * 2000 + "]}\n")
    assert plan_of(capsys, str(path), warned=NO_NODES) == NOTHING


def test_a_reader_that_leaves_early_is_no_error() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "custom_scheduler", "plan", "--snapshot", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the snapshot is even sent: the output has nowhere to go
    process.stdin.write((DATA / "demo-two.json").read_bytes())
    process.stdin.close()
    assert (process.wait(timeout=60), process.stderr.read()) == (141, b"")
    process.stderr.close()


# -- bad input ----------------------------------------------------------------------------------


def assert_one_line(code: int, out: str, err: str, prefix: str, problem: str) -> None:
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err
    assert err.startswith(prefix), err
    assert problem in err, err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, ": cannot read: No such file or directory"),
        ("", ": is empty"),
        (" \n\t\n", ": is empty"),
        ("{not json", ": invalid JSON: "),
        ('{"kind": "List", "items": [}', ": invalid JSON: "),
        ("a: [unclosed", ": neither JSON nor YAML: did not find expected ',' or ']' (line 2, column 1)"),
        ("kind: List\n items: []\n- x", ": neither JSON nor YAML: "),
        ("kind: List\n---\nkind: List\n", ": neither JSON nor YAML: "),  # two documents
        ("a: " + "[" * 5000 + "]" * 5000, ": neither JSON nor YAML: nested 5000 levels deep (at most 1000)"),
        ("[" * 5000 + "]" * 5000, ": invalid JSON: "),
        ("[1, 2]", ": expected a List object, got an array"),
        ("42", ": expected a List object, got a number"),
        ("just words", ": expected a List object, got a string"),
        ('{"kind": "Pod"}', ": expected kind List (or NodeList, PodList, PriorityClassList), got Pod"),
        (
            '{"kind": "List", "items": [{"kind": "Node", "metadata": {}}]}',
            ": Node item 0 has no metadata.name",
        ),
        (
            "kind: List\nitems:\n- kind: Pod\n  metadata: {name: a}\n",
            ": Pod item 0 'a' has no metadata.namespace",
        ),
        ('{"kind": "List", "items": [{"metadata": {"name": "a"}}]}', ": item 0 ('a') has no kind"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    path = tmp_path / "snap.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: ", problem)


def test_bad_stdin_is_named_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin_of(monkeypatch, b"{oops")
    code, out, err = run(capsys, "plan", "--snapshot", "-")
    assert_one_line(code, out, err, "custom-scheduler: <stdin>: ", "invalid JSON")


def test_binary_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe\x80\x81")
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: ", "neither JSON nor YAML")


def test_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "--snapshot", str(tmp_path))
    assert_one_line(code, out, err, f"custom-scheduler: {tmp_path}: ", "cannot read: Is a directory")


def test_an_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snap.json"
    path.write_text("{}")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    # Root reads files whatever their mode: the refusal is simulated where it is raised.
    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: ", "cannot read: Permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.json"
    path.write_text("{}")
    path.chmod(0)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: ", "cannot read: Permission denied")


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("a in ()", "label selector term 'a in ()' lists no values"),
        ("=x", "label selector term '=x' is not valid"),
        ("a=b,,c", "label selector term '' is not valid"),
    ],
)
def test_a_bad_selector_is_one_line_naming_the_flag(
    capsys: pytest.CaptureFixture[str], selector: str, problem: str
) -> None:
    code, out, err = run(
        capsys, "plan", "--snapshot", str(DATA / "demo-two.json"), "--node-selector", selector
    )
    assert_one_line(code, out, err, "custom-scheduler: --node-selector: ", problem)


@pytest.mark.parametrize(
    "selector",
    [
        "a in (b" + ",c" * 50_000,  # unclosed: the rest of the argument is one term
        "ok=1," + "=" * 100_000,
        "k" * 100_000,
    ],
)
def test_a_huge_bad_selector_is_quoted_in_part(capsys: pytest.CaptureFixture[str], selector: str) -> None:
    code, out, err = run(
        capsys, "plan", "--snapshot", str(DATA / "demo-two.json"), "--node-selector", selector
    )
    term = selector.removeprefix("ok=1,")
    assert_one_line(code, out, err, "custom-scheduler: --node-selector: ", f"term {term[:60]!r}... (")
    assert len(err) < 200, err


# -- YAML that parses, but to what ------------------------------------------------------------


def yaml_of(doc: object, **raw: str) -> str:
    """`doc` as YAML, each placeholder value `@name` replaced by raw YAML text (unquoted)."""
    text = yaml.safe_dump(doc, sort_keys=False)
    for name, value in raw.items():
        text = text.replace(f"'@{name}'", value)
    return text


def test_an_impossible_date_is_text_as_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `2020-13-01` unquoted is a YAML timestamp that no calendar has: it stays the text it would be
    # in JSON, in a field nobody reads as in one the planner reads (an unreadable creation time).
    p = pod("a")
    p["metadata"]["creationTimestamp"] = "@date"  # type: ignore[index]
    doc = cluster(node("n1"), p, node("n2"))
    doc["metadata"] = {"resourceVersion": "", "seen": "@date", "tagged": "@tagged", "soon": "@soon"}
    path = tmp_path / "snap.yaml"
    path.write_text(yaml_of(doc, date="2020-13-01", tagged="!!timestamp 2020-02-30", soon="!!timestamp soon"))
    as_json = json.loads(
        json.dumps(doc)
        .replace("@date", "2020-13-01")
        .replace("@tagged", "2020-02-30")
        .replace("@soon", "soon")
    )
    assert plan_of(capsys, str(path)) == plan_of(capsys, write(tmp_path, as_json))
    assert plan_of(capsys, str(path))["binds"] == [{"pod": "default/a", "node": "n1"}]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("!!int abc", "invalid literal for int() with base 10: 'abc' (line 3, column 4)"),
        ("!!float abc", "could not convert string to float: 'abc' (line 3, column 4)"),
        ("!!bool maybe", "bool cannot be 'maybe' (line 3, column 4)"),
        (
            "1" * 5000,
            "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits "
            "(line 3, column 4)",
        ),
    ],
)
def test_a_value_yaml_cannot_construct_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(f"kind: List\nitems: []\nx: {value}\n")
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: neither JSON nor YAML: ", problem)


def laughs(levels: int) -> str:
    """Ten references to the level below, `levels` deep: 10**levels strings in 60 bytes a level."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def shared_labels(nodes: int, labels: int) -> str:
    """`nodes` nodes that all name one map of `labels` labels: each node read at its full size."""
    lines = ["kind: List", "common: &labels {" + ", ".join(f"l{i}: v" for i in range(labels)) + "}", "items:"]
    lines += [f"- {{kind: Node, metadata: {{name: n{i}, labels: *labels}}}}" for i in range(nodes)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "nodes"),
    [
        ("kind: List\nitems: []\n" + laughs(9), "its 33 nodes stand for more than 100,066"),
        (shared_labels(300, 1000), "its 4,407 nodes stand for more than 108,814"),
    ],
    ids=["laughs-in-a-field-never-read", "one-label-map-for-every-node"],
)
def test_aliases_that_multiply_the_work_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, nodes: str
) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(content)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: refused: its YAML aliases (*name) ", nodes)
    assert "(aliases may add as many nodes as the file holds, plus 100,000)" in err


@pytest.mark.parametrize(
    "content",
    ["kind: List\nitems: &i [*i]\n", "kind: List\nitems:\n- &p {kind: Pod, spec: {again: *p}}\n"],
)
def test_an_alias_inside_what_it_names_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(content)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert_one_line(code, out, err, f"custom-scheduler: {path}: refused: ", "a YAML alias names a node")


def test_aliases_written_by_hand_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Anchors for what nodes share, a merge key, and a `*` inside a string: within the allowance.
    path = tmp_path / "snap.yaml"
    path.write_text(
        "kind: List\n"
        "items:\n"
        "- kind: Node\n"
        "  metadata: &meta {name: n1, labels: &pool {pool: batch}, annotations: {note: 'a *b'}}\n"
        "  status: &ready {conditions: [{type: Ready, status: 'True'}]}\n"
        "- {kind: Node, metadata: {<<: *meta, name: n2, labels: {pool: other}}, status: *ready}\n"
        "- {kind: Node, metadata: {name: n3, labels: *pool}, status: *ready}\n"
        "- kind: Pod\n"
        "  metadata: {name: a, namespace: default, creationTimestamp: 2025-06-01T00:00:00Z}\n"
        "  spec: {schedulerName: custom-scheduler}\n"
    )
    assert plan_of(capsys, str(path), "--node-selector", "pool=batch")["binds"] == [
        {"pod": "default/a", "node": "n1"}
    ]
    assert plan_of(capsys, str(path), "--node-selector", "pool=other")["binds"] == [
        {"pod": "default/a", "node": "n2"}
    ]


def test_bad_input_through_the_real_entry_point(tmp_path: Path) -> None:
    path = write(tmp_path, {"kind": "List", "items": [{"kind": "Pod", "metadata": {"namespace": "ns"}}]})
    done = subprocess.run(
        [sys.executable, "-m", "custom_scheduler", "plan", "--snapshot", path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"custom-scheduler: {path}: Pod item 0 has no metadata.name\n"


# -- the parser ---------------------------------------------------------------------------------


def test_run_flags_become_settings() -> None:
    argv = [
        "run",
        "--kubeconfig", "/k", "--context", "c", "--scheduler-name", "s", "--namespace", "ns",
        "--node-selector", "pool=a", "--interval", "2.5", "--max-concurrency", "8", "--dry-run",
        "--log-format", "json", "--log-level", "debug",
    ]  # fmt: skip
    settings = settings_from_args(build_parser().parse_args(argv))
    assert settings == Settings(
        scheduler_name="s",
        namespace="ns",
        node_selector=parse_selector("pool=a"),
        interval=2.5,
        max_concurrency=8,
        dry_run=True,
        log_format="json",
        log_level="debug",
        kubeconfig="/k",
        context="c",
        health_port=10251,
    )


def test_defaults_are_the_specs() -> None:
    run_settings = settings_from_args(build_parser().parse_args(["run"]))
    assert (run_settings.interval, run_settings.max_concurrency, run_settings.log_format) == (5.0, 64, "auto")
    assert run_settings.scheduler_name == "custom-scheduler" and run_settings.namespace is None
    plan_settings = settings_from_args(build_parser().parse_args(["plan", "--snapshot", "-"]))
    assert plan_settings == Settings()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--interval", "0"], "--interval must be more than 0 seconds"),
        (["--max-concurrency", "0"], "--max-concurrency must be at least 1"),
        (["--node-selector", "!"], "--node-selector: "),
    ],
)
def test_bad_run_values_stop_before_anything_runs(
    capsys: pytest.CaptureFixture[str], flags: list[str], problem: str
) -> None:
    code, out, err = run(capsys, "run", *flags)
    assert_one_line(code, out, err, "custom-scheduler: ", problem)


@pytest.mark.parametrize("flag", ["--kubeconfig", "--context"])
def test_a_snapshot_and_a_cluster_exclude_each_other(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, out, err = run(capsys, "plan", "--snapshot", str(DATA / "demo-two.json"), flag, "x")
    assert_one_line(code, out, err, "custom-scheduler: --snapshot reads a file", "give one")


@pytest.mark.parametrize("argv", [[], ["plan", "--interval", "3"], ["run", "--log-format", "xml"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "") and err.startswith("usage: custom-scheduler")


def test_help_works_both_ways() -> None:
    script = str(Path(sys.executable).parent / "custom-scheduler")
    for argv in ([script, "--help"], [sys.executable, "-m", "custom_scheduler", "--help"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "plan" in done.stdout and "run" in done.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("plan", "--snapshot --kubeconfig --context --scheduler-name --namespace --node-selector"),
        (
            "status",
            "--snapshot --kubeconfig --context --scheduler-name --namespace --node-selector --now --output",
        ),
        (
            "run",
            "--kubeconfig --context --scheduler-name --namespace --node-selector --interval "
            "--max-concurrency --dry-run --log-format --log-level --health-port --bind-address",
        ),
    ],
)
def test_each_command_documents_its_flags(
    capsys: pytest.CaptureFixture[str], command: str, flags: list[str]
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert [f for f in flags if f not in out] == []


# -- a cluster that cannot be used: one line, exit 2 ------------------------------------------


def kubeconfig(tmp_path: Path, server: str, *, cluster: str = "", name: str = "kubeconfig") -> Path:
    """A kubeconfig for `server`, with a token; `cluster` replaces its cluster's settings (YAML)."""
    path = tmp_path / name
    default = f"{{server: {server!r}, insecure-skip-tls-verify: true}}"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {cluster or default}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return path


def closed_port() -> int:
    """A port that nothing listens on (bound a moment, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real entry point, as a process of its own (`run` configures logging for the process)."""
    return subprocess.run(
        [sys.executable, "-m", "custom_scheduler", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "apiVersion: v1\nclusters: [\n  - bad",
            "not valid YAML: expected the node content, but found '-' (line 3",
        ),
        ("- a\n- b\n", "expected a Config (a mapping), got a list"),
        ("", "expected a Config (a mapping), got nothing"),
        ("just words\n", "expected a Config (a mapping), got text"),
        ("apiVersion: v1\nkind: Config\n", "Invalid kube-config file. Expected key current-context"),
        (None, "cannot read: Is a directory"),
    ],
)
@pytest.mark.parametrize("cmd", ["plan", "run"])
def test_a_kubeconfig_that_cannot_be_used_is_one_line(
    tmp_path: Path, content: str | None, problem: str, cmd: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    flags = ["--health-port=0"] if cmd == "run" else []
    done = command(cmd, "--kubeconfig", str(path), *flags)
    assert_one_line(
        done.returncode, done.stdout, done.stderr, f"custom-scheduler: kubeconfig {path}: ", problem
    )


def test_a_kubeconfig_naming_a_missing_file_or_context_is_one_line(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path, "", cluster="{server: 'https://127.0.0.1:1', certificate-authority: /nonexistent/ca}"
    )
    done = command("plan", "--kubeconfig", str(path))
    assert_one_line(
        done.returncode, done.stdout, done.stderr, f"custom-scheduler: kubeconfig {path}: ", "/nonexistent/ca"
    )
    good = kubeconfig(tmp_path, "https://127.0.0.1:1", name="good")
    done = command("plan", "--kubeconfig", str(good), "--context", "elsewhere")
    assert_one_line(
        done.returncode, done.stdout, done.stderr, f"custom-scheduler: kubeconfig {good}: ", "elsewhere"
    )


def test_a_server_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    path = kubeconfig(tmp_path, f"https://127.0.0.1:{port}")
    done = command("plan", "--kubeconfig", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"custom-scheduler: cannot reach https://127.0.0.1:{port}: connection refused\n",
    )


def test_a_busy_health_port_is_one_line(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, f"https://127.0.0.1:{closed_port()}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = command("run", "--kubeconfig", str(path), "--bind-address=127.0.0.1", f"--health-port={port}")
    problem = f"--health-port {port}: cannot listen on 127.0.0.1:{port}: address already in use"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"custom-scheduler: {problem}\n")


class _Forbidding(http.server.BaseHTTPRequestHandler):
    """An API server that answers every request as RBAC does a verb it lacks."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": 'nodes is forbidden: User "u" cannot list resource "nodes" in API group "" '
                "at the cluster scope",
                "reason": "Forbidden",
                "code": 403,
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client may hang up first, and that is fine
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def forbidding() -> Iterator[str]:
    """The address of an API server (plain HTTP, on loopback) that refuses everything with 403."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidding)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refusal_by_rbac_is_one_line(tmp_path: Path, forbidding: str) -> None:
    path = kubeconfig(tmp_path, forbidding, cluster=f"{{server: {forbidding!r}}}")
    done = command("plan", "--kubeconfig", str(path))
    assert_one_line(
        done.returncode,
        done.stdout,
        done.stderr,
        "custom-scheduler: the API server refused: GET /api/v1/nodes",
        'answered 403: nodes is forbidden: User "u" cannot list resource "nodes"',
    )
    done = command("run", "--kubeconfig", str(path), "--health-port=0", "--log-format=json")
    assert (done.returncode, done.stderr) == (2, ""), done.stderr
    failed = [json.loads(line) for line in done.stdout.splitlines() if '"scheduler_failed"' in line]
    # The informers list at once: whichever is refused first ends the process.
    assert [f["level"] for f in failed] == ["critical"]
    assert re.fullmatch(r"GET /\S+ answered 403: \S+ is forbidden: User .*", failed[0]["error"])
    assert "exception" not in failed[0] and "Traceback" not in done.stdout


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """`main` configures structlog for the process: set it back afterwards."""
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_bug_is_one_line_with_its_place_and_a_traceback_only_at_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_logging: None, level: str
) -> None:
    import custom_scheduler.service

    async def broken(settings: Settings) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(custom_scheduler.service, "run", broken)
    code, out, err = run(capsys, "run", "--log-format=json", f"--log-level={level}", "--health-port=0")
    (line,) = [json.loads(line) for line in out.splitlines()]
    assert (code, err, line["event"], line["error"]) == (1, "", "scheduler_failed", "ZeroDivisionError: oops")
    assert line["where"] == f"test_cli.py:{broken.__code__.co_firstlineno + 1} in broken"
    assert ("exception" in line) == (level == "debug")


def test_health_and_metrics_are_served_by_default_on_every_interface() -> None:
    settings = settings_from_args(build_parser().parse_args(["run"]))
    assert (settings.health_port, settings.bind_address) == (10251, "0.0.0.0")
    settings = settings_from_args(build_parser().parse_args(["run", "--bind-address=::1", "--health-port=0"]))
    assert (settings.health_port, settings.bind_address) == (0, "::1")


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--bind-address", "localhost"], "--bind-address: 'localhost' is not an IP address"),
        (["--health-port", "70000"], "--health-port must be from 0 to 65535"),
    ],
)
def test_bad_serving_flags_are_one_line(
    capsys: pytest.CaptureFixture[str], flags: list[str], problem: str
) -> None:
    code, out, err = run(capsys, "run", *flags)
    assert_one_line(code, out, err, "custom-scheduler: ", problem)


# -- no starvation: --reserve-after and --now (SPEC 6a, 10) ---------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("90", 90.0), ("2m", 120.0), ("1h", 3600.0), ("0", 0.0), ("off", None), ("OFF", None)],
)
def test_reserve_after_takes_durations_and_off(text: str, seconds: float | None) -> None:
    for command in (["run"], ["plan", "--snapshot", "-"]):
        parsed = build_parser().parse_args([*command, "--reserve-after", text])
        assert settings_from_args(parsed).reserve_after == seconds
    assert settings_from_args(build_parser().parse_args(["run"])).reserve_after == 30.0


@pytest.mark.parametrize("text", ["soon", "-5", "5x", "", "inf", "nan"])
def test_a_bad_reserve_after_is_one_line(capsys: pytest.CaptureFixture[str], text: str) -> None:
    code, out, err = run(capsys, "run", "--reserve-after", text)
    assert_one_line(code, out, err, "custom-scheduler: --reserve-after: ", "is not a duration")


def _starving_gang() -> dict[str, object]:
    """Two nodes, one free, one held by a pod of the gang's priority; a gang of two created at
    2025-06-01T00:00:00Z: it reserves the free node once it has waited --reserve-after."""
    gang = []
    for i in range(2):
        member = pod(f"g-{i}")
        member["metadata"]["annotations"] = {GROUP_NAME: "g", MIN_AVAILABLE: "2"}  # type: ignore[index]
        gang.append(member)
    busy = pod("busy")
    busy["spec"]["nodeName"] = "n1"  # type: ignore[index]
    busy["status"] = {"phase": "Running"}
    return cluster(node("n1"), node("n2"), busy, *gang)


def test_plan_as_of_now_reserves_for_a_starving_gang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, _starving_gang())
    early = plan_of(capsys, path, "--now", "2025-06-01T00:00:10Z")
    assert early["nominations"] == [] and len(early["unschedulable"]) == 2, "it has waited 10 s of 30"
    late = plan_of(capsys, path, "--now", "2025-06-01T00:01:00Z")
    assert late["nominations"] == [{"pod": "default/g-0", "node": "n2"}]
    assert late["unschedulable"] == [
        {"pod": "default/g-1", "reason": "gang default/g reserves 1 of the 2 nodes it needs (for 30s)"}
    ]
    assert plan_of(capsys, path, "--now", "2025-06-01T00:01:00Z", "--reserve-after", "off") == early
    assert plan_of(capsys, path, "--now", "2025-06-01T00:00:10Z", "--reserve-after", "0")["nominations"]


def test_a_bad_now_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, _starving_gang())
    code, out, err = run(capsys, "plan", "--snapshot", path, "--now", "yesterday")
    assert (code, out) == (2, "") and "argument --now: 'yesterday' is not an RFC 3339 time" in err
