"""A short soak (the long one is `make soak`): churn on a control plane of its own, zero violations."""

from __future__ import annotations

from pathlib import Path

import anyio

from custom_scheduler.controlplane import ControlPlane
from tests.soak import soak


async def test_a_short_soak_has_no_violations(control_plane: ControlPlane, tmp_path: Path) -> None:
    plane = ControlPlane(quiet=True)
    await anyio.to_thread.run_sync(plane.start)
    try:
        report = await soak(plane, 45, seed=7, log=tmp_path / "scheduler.log")
    finally:
        await anyio.to_thread.run_sync(plane.stop)
    assert report.bound > 10, report.markdown()
    assert sum(report.actions.values()) > 100, report.markdown()
    assert not report.violations, report.markdown()
