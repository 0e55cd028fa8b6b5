"""`custom-scheduler plan --snapshot`: SPEC section 10's output, flags honoured, bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from custom_scheduler.__main__ import main

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


def node(name: str, labels: dict[str, str] | None = None, cordoned: bool = False) -> dict[str, object]:
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name: str, ns: str = "default", scheduler: str = "custom-scheduler") -> dict[str, object]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2025-06-01T00:00:00Z"},
        "spec": {"schedulerName": scheduler},
        "status": {"phase": "Pending"},
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, doc: object, name: str = "snap.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_demo_two_from_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "--snapshot", str(DATA / "demo-two.json"))
    assert (code, err) == (0, "")
    assert json.loads(out) == DEMO_TWO


def test_yaml_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump(json.loads((DATA / "demo-two.json").read_text())))
    code, out, _ = run(capsys, "plan", "--snapshot", str(path))
    assert code == 0 and json.loads(out) == DEMO_TWO


def test_flags_are_honoured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "kind": "List",
        "items": [
            node("n1"),
            node("n2", {"pool": "gpu"}),
            node("n3", {"pool": "gpu"}, cordoned=True),
            pod("a"),
            pod("b", ns="other"),
            pod("c", scheduler="team-x"),
        ],
    }
    path = write(tmp_path, doc)
    _, out, _ = run(capsys, "plan", "--snapshot", path)
    assert json.loads(out)["binds"] == [{"pod": "default/a", "node": "n1"}, {"pod": "other/b", "node": "n2"}]
    _, out, _ = run(capsys, "plan", "--snapshot", path, "--namespace", "other", "--node-selector", "pool=gpu")
    assert json.loads(out)["binds"] == [{"pod": "other/b", "node": "n2"}]
    _, out, _ = run(capsys, "plan", "--snapshot", path, "--scheduler-name", "team-x")
    assert json.loads(out)["binds"] == [{"pod": "default/c", "node": "n1"}]


def test_stdin_through_the_real_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "custom_scheduler", "plan", "--snapshot", "-"],
        input=(DATA / "demo-two.json").read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == DEMO_TWO


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read: No such file or directory"),
        ("{not json", "invalid JSON"),
        ("a: [unclosed", "neither JSON nor YAML"),
        ("[1, 2]", "expected a List object, got list"),
        ("42", "expected a List object, got int"),
        ('{"kind": "Pod"}', "expected kind List, got Pod"),
        ('{"kind": "List", "items": [{"kind": "Node", "metadata": {}}]}', "Node item 0 has no metadata.name"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    path = tmp_path / "snap.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "plan", "--snapshot", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"custom-scheduler: {path}: ") and problem in err


def test_a_directory_and_a_bad_selector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--snapshot", str(tmp_path))
    assert code == 2 and err.startswith(f"custom-scheduler: {tmp_path}: cannot read")
    code, _, err = run(
        capsys, "plan", "--snapshot", str(DATA / "demo-two.json"), "--node-selector", "a in ()"
    )
    assert code == 2 and "--node-selector" in err and err.count("\n") == 1


def test_help_works_both_ways() -> None:
    for argv in (["custom-scheduler", "--help"], [sys.executable, "-m", "custom_scheduler", "--help"]):
        if argv[0] == "custom-scheduler":
            argv[0] = str(Path(sys.executable).parent / "custom-scheduler")
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "plan" in done.stdout and "run" in done.stdout
