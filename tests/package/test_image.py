"""What the image installs: a base pinned by digest, exactly the locked runtime dependencies by hash, no pip.

No container engine runs here, so the Containerfile and requirements.lock are checked as files:
the lock (`make lock`) holds each runtime dependency of pyproject.toml within its range, and
nothing that none of them needs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = "custom-scheduler (pyproject.toml)"  # what the lock says of a direct dependency
# The image's interpreter: pyproject's markers are read as it reads them.
IMAGE_ENVIRONMENT = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.15",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
}


@dataclass
class Locked:
    """One entry of requirements.lock."""

    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(text: str) -> dict[str, Locked]:
    """The entries of a `uv pip compile --generate-hashes` file, by canonical name."""
    entries: dict[str, Locked] = {}
    current: Locked | None = None
    for line in text.splitlines():
        stripped = line.strip().removesuffix("\\").strip()
        if not stripped or (current is None and stripped.startswith("#")):
            continue  # the header
        if entry := re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", stripped):
            current = entries.setdefault(canonicalize_name(entry[1]), Locked(entry[2]))
        elif current is not None and (digest := re.fullmatch(r"--hash=sha256:([0-9a-f]{64})", stripped)):
            current.hashes.append(digest[1])
        elif current is not None and stripped.startswith("#"):
            who = stripped.removeprefix("#").strip().removeprefix("via").strip()
            if who:
                current.via.append(who if who == PROJECT else canonicalize_name(who))
        else:
            raise AssertionError(f"requirements.lock: a line that pins nothing by hash: {line!r}")
    return entries


def runtime_dependencies() -> dict[str, Requirement]:
    """pyproject.toml's [project] dependencies that apply in the image, by canonical name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    return {
        canonicalize_name(r.name): r
        for r in requirements
        if r.marker is None or r.marker.evaluate(IMAGE_ENVIRONMENT)  # type: ignore[arg-type]
    }


def test_the_lock_pins_every_runtime_dependency_within_its_range_by_hash() -> None:
    lock = read_lock((REPO / "requirements.lock").read_text())
    direct = runtime_dependencies()
    assert direct, "pyproject.toml declares runtime dependencies"
    assert sorted(n for n, e in lock.items() if PROJECT in e.via) == sorted(direct), (
        "the lock's direct dependencies are pyproject.toml's: run `make lock`"
    )
    outside = {
        n: (lock[n].version, str(r.specifier))
        for n, r in direct.items()
        if lock[n].version not in r.specifier
    }
    assert not outside, f"locked outside pyproject.toml's range (run `make lock`): {outside}"
    assert not [n for n, e in lock.items() if not e.hashes], "every entry carries its files' hashes"


def test_the_lock_holds_nothing_its_dependencies_do_not_need() -> None:
    lock = read_lock((REPO / "requirements.lock").read_text())
    needs: dict[str, set[str]] = {name: set() for name in lock}
    for name, entry in lock.items():
        for parent in entry.via:
            if parent != PROJECT:
                assert parent in lock, f"{name} is there for {parent}, which is not locked"
                needs[parent].add(name)
    reached, todo = set(), [n for n, e in lock.items() if PROJECT in e.via]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(needs[name])
    assert reached == set(lock), f"locked for nothing: {sorted(set(lock) - reached)}"


def stages(containerfile: str) -> list[str]:
    """The Containerfile's stages, each from its FROM line on."""
    return re.split(r"(?m)^(?=FROM )", containerfile)[1:]


def test_the_image_builds_from_a_digest_and_the_lock_and_runs_without_pip() -> None:
    text = (REPO / "Containerfile").read_text()
    base = re.search(r"(?m)^ARG PYTHON=(\S+)$", text)
    assert base and re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base[1]), "the base, by digest"
    build, final = stages(text)
    assert build.startswith("FROM ${PYTHON} AS build") and final.startswith("FROM ${PYTHON}\n")
    # Dependencies only from the lock, each file checked against its hash, no build from source.
    assert re.search(r"--require-hashes --only-binary=:all: --no-deps -r requirements\.lock", build)
    # The project's own wheel is built with what the base holds, resolving nothing.
    assert "--no-build-isolation --no-deps" in build
    assert re.search(r"pip uninstall --yes [^\n]*pip setuptools wheel", final), "no installer in the image"
    assert "COPY --from=build /opt/custom-scheduler /opt/custom-scheduler" in final
    assert "USER 65532:65532" in final and "pip install" not in final
