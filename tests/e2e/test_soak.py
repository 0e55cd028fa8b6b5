"""A short soak (the long one is `make soak`): churn on a control plane of its own, zero violations."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cluster import own_control_plane
from tests.harness.controlplane import ControlPlane
from tests.soak import soak


async def test_a_short_soak_has_no_violations(control_plane: ControlPlane, tmp_path: Path) -> None:
    async with own_control_plane() as plane:
        report = await soak(plane, 45, seed=7, log=tmp_path / "scheduler.log")
    assert report.bound > 10, report.markdown()
    assert sum(report.actions.values()) > 100, report.markdown()
    assert not report.violations, report.markdown()
    # A broken node stays NotReady until the churn heals it: here some 100 node-seconds; when KWOK
    # healed it 0.1 s later, 3.
    assert report.actions["not_ready"] > 0 and report.not_ready_seconds > 20, report.markdown()
