"""hack/build.sh with a stand-in for Go: what it builds, with which flags, and two cold builds at once.

The stand-in records each `go build` (its flags, when it started and ended) and writes an empty
executable where the binary goes, so the script's own logic runs in a second, not six minutes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}
FAKE_GO = r"""#!/usr/bin/env bash
case "$1" in
  version) echo "go version go1.26.0 linux/amd64" ;;
  env) case "$2" in GOVERSION) echo go1.26.0 ;; GOTOOLCHAIN) echo auto ;; esac ;;
  build)
    shift
    while [ $# -gt 1 ]; do
      case "$1" in -ldflags=*) flags=${1#-ldflags=} ;; -o) out=$2 ;; esac
      shift
    done
    started=$(date +%s.%N)
    sleep 0.2  # long enough that a second build started meanwhile would overlap this one
    printf '#!/bin/sh\n' >"$out" && chmod +x "$out"
    echo "$(basename "${out%.partial}")|$started|$(date +%s.%N)|$flags" >>"$FAKE_GO_LOG"
    ;;
esac
"""


def build(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """hack/build.sh with the stand-in Go and a cache of this test's own."""
    go = tmp_path / "go"
    if not go.exists():
        go.write_text(FAKE_GO)
        go.chmod(0o755)
    env = {
        **os.environ,
        "GO": str(go),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "FAKE_GO_LOG": str(tmp_path / "builds.log"),
    }
    return subprocess.Popen(
        [str(REPO / "hack" / "build.sh"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def builds(tmp_path: Path) -> list[tuple[str, float, float, str]]:
    """(binary, started, ended, ldflags) of each `go build`, in the order they ended."""
    lines = (tmp_path / "builds.log").read_text().splitlines()
    return [(n, float(s), float(e), f) for n, s, e, f in (line.split("|") for line in lines)]


def test_the_kubernetes_binaries_are_built_knowing_their_version(tmp_path: Path) -> None:
    printed = build(tmp_path, "--print-bin-dir").communicate()[0].strip()
    assert printed.endswith("custom-scheduler/k8s-v1.36.3_etcd-v3.6.8_kwok-v0.8.0_recipe-2/bin")
    output, _ = build(tmp_path).communicate()
    flags = {name: f.split() for name, _, _, f in builds(tmp_path)}
    assert set(flags) == KUBERNETES | {"etcd", "kwok"}, output
    for name in KUBERNETES:
        assert {
            "k8s.io/component-base/version.gitVersion=v1.36.3",
            "k8s.io/component-base/version.gitMajor=1",
            "k8s.io/component-base/version.gitMinor=36",
            "k8s.io/client-go/pkg/version.gitVersion=v1.36.3",
        } <= set(flags[name]), name
    assert flags["etcd"] == flags["kwok"] == ["-s", "-w"]
    assert sorted(p.name for p in Path(printed).iterdir()) == sorted(flags)


def test_two_cold_builds_take_turns(tmp_path: Path) -> None:
    first, second = build(tmp_path), build(tmp_path)
    outputs = [first.communicate()[0], second.communicate()[0]]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    done = sorted(builds(tmp_path), key=lambda b: b[1])
    assert len(done) == 6, outputs  # each binary once: the build that waited found them built
    assert all(later[1] >= earlier[2] for earlier, later in itertools.pairwise(done)), done
