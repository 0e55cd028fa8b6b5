"""The wheel the image installs: the code and no tooling; installed alone in a fresh venv, it runs.

No container engine runs here, so this is what `make image` rests on, checked without one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Tooling, not product: the local control plane and the demo live under tests/ (DESIGN.md).
TOOLING = ("controlplane", "demo")


def test_the_wheel_installs_alone_and_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("custom_scheduler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"custom_scheduler/service.py", "custom_scheduler/__main__.py"} <= names
    # The planner is a module or a package of phase modules: either is the product.
    assert names & {"custom_scheduler/planner.py", "custom_scheduler/planner/__init__.py"}
    assert {n.split("/")[0] for n in names} == {"custom_scheduler", wheel.name.split("-py")[0] + ".dist-info"}
    modules = {Path(n).stem for n in names if n.endswith(".py")} | {
        part for n in names for part in Path(n).parent.parts
    }
    assert not modules & set(TOOLING), sorted(n for n in names if Path(n).stem in TOOLING)
    assert_the_containerfiles_check_passes(wheels)

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True
    )
    script = env / "bin" / "custom-scheduler"
    helped = subprocess.run([str(script), "--help"], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert "run" in helped.stdout and "plan" in helped.stdout
    planned = subprocess.run(
        [str(script), "plan", "--snapshot", str(REPO / "tests/unit/data/demo-two.json")],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    for tool in TOOLING:
        absent = subprocess.run(
            [str(python), "-c", f"import custom_scheduler.{tool}"],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,  # not the repository, whose source would be imported instead
        )
        assert absent.returncode == 1 and "ModuleNotFoundError" in absent.stderr, absent.stderr
    assert json.loads(planned.stdout)["evictions"] == [
        {"pod": "default/test-pod-low-pri", "node": "n1", "preemptor": "default/job-two-highpri-b"}
    ]
    # `run` parses its flags and fails cleanly without a cluster: one line, status 2.
    failed = subprocess.run(
        [str(script), "run", "--kubeconfig", str(tmp_path / "none")],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert failed.returncode == 2 and "does not exist" in failed.stderr and "Traceback" not in failed.stderr


def containerfile_check(wheels: Path) -> subprocess.CompletedProcess[str]:
    """Run the few lines with which the Containerfile checks the wheel it built, on `wheels`."""
    found = re.search(r"python - <<'PY'\n(.*?)\nPY\n", (REPO / "Containerfile").read_text(), re.DOTALL)
    assert found, "the Containerfile checks its wheel"
    script = found[1].replace("/wheels/", f"{wheels}/")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)


def assert_the_containerfiles_check_passes(wheels: Path) -> None:
    """The image's own check of its wheel agrees with this test on the real wheel."""
    done = containerfile_check(wheels)
    assert (done.returncode, done.stderr) == (0, "")


def test_the_containerfiles_check_refuses_tooling_and_a_missing_planner(tmp_path: Path) -> None:
    product = ["custom_scheduler/__main__.py", "custom_scheduler/service.py"]
    for extra, problem in [
        (["custom_scheduler/planner/__init__.py", "custom_scheduler/controlplane.py"], "holds tooling"),
        ([], "lacks ['custom_scheduler/planner']"),
    ]:
        wheels = tmp_path / str(len(extra))
        wheels.mkdir()
        with zipfile.ZipFile(wheels / "custom_scheduler-0.1.0-py3-none-any.whl", "w") as wheel:
            for name in product + extra:
                wheel.writestr(name, "")
        done = containerfile_check(wheels)
        assert done.returncode == 1 and problem in done.stderr, done.stderr
