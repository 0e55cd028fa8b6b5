"""SPEC 6a's cost made visible: the nodes the reserving unit holds idle, and how long it has waited."""

from __future__ import annotations

from custom_scheduler.metrics import Metrics
from custom_scheduler.model import Nominate, Plan, Reserving


def _value(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None
    return value


def test_the_reserving_unit_shows_in_its_metrics_and_is_cleared_after() -> None:
    metrics = Metrics()
    reserving = Plan(
        nominations=(Nominate("default/g-0", "n1", reason="gang default/g reserves 1 of the 2 nodes"),),
        reserving=Reserving("gang default/g", held=1, need=2, waited=42.0),
    )
    metrics.observe_pass(reserving, seconds=0.01, gangs={"default/g-0": "default/g"})
    assert _value(metrics, "scheduler_reserved_nodes") == 1
    assert _value(metrics, "custom_scheduler_reserving_unit_wait_seconds") == 42.0
    metrics.observe_pass(Plan(), seconds=0.01, gangs={})
    assert _value(metrics, "scheduler_reserved_nodes") == 0
    assert _value(metrics, "custom_scheduler_reserving_unit_wait_seconds") == 0
