"""The test driver does to a cluster what the shell and the cluster would (`driver.py`), pass after pass.

The checkers of SPEC 9.8 and 9.9 trust it: if victims never left, or work never finished, a run
would prove nothing. A scripted planner plays fixed plans, so that only the driver is under test.
"""

from __future__ import annotations

from custom_scheduler.model import Plan, Snapshot, Unschedulable
from custom_scheduler.settings import Settings
from tests.unit.builders import bind, evict, key, node, nominate, pod
from tests.unit.driver import Arrival, Driver


def test_the_driver_applies_plans_lets_victims_leave_work_finish_and_pods_arrive() -> None:
    """Evicted `v` gets a deletionTimestamp of now + its grace (7 s) and is gone at the first tick
    after it; `p` is nominated, then bound and Running; `w` finishes after its 10 s (Succeeded for
    one tick, then gone); `q` arrives at t=5, created then; a nomination the plan drops is cleared;
    reasons are written to PodScheduled; every snapshot reads the clock."""
    plans = {
        0.0: Plan(
            nominations=(nominate("p", "n0", waiting_for=("v",)),), evictions=(evict("v", "n0", by="p"),)
        ),
        5.0: Plan(nominations=(nominate("p", "n0"), nominate("q", "n2"))),
        10.0: Plan(binds=(bind("p", "n0"),), unschedulable=(Unschedulable(key("q"), "no node"),)),
    }
    driver = Driver.of(
        Snapshot(
            (node("n0"), node("n1"), node("n2")),
            (pod("v", on="n0"), pod("w", on="n1"), pod("p", priority=10)),
        ),
        tick=5.0,
        lifetimes={key("w"): 10.0},
        grace={key("v"): 7.0},
        arrivals=[Arrival(5.0, pod("q"), 20.0)],
        planner=lambda snapshot, _: plans.get(snapshot.now, Plan()),
    )
    driver.run(4)
    seen = [{p.name: p for p in step.snapshot.pods} for step in driver.history]
    assert [step.now for step in driver.history] == [0.0, 5.0, 10.0, 15.0]
    # t=5: v leaves (deletionTimestamp 0 + 7), p waits nominated, q has arrived.
    assert seen[1]["v"].deleting and seen[1]["v"].deletion_time == 7.0
    assert seen[1]["p"].nominated_node == "n0" and seen[1]["p"].scheduled_reason == "Unschedulable"
    assert seen[1]["q"].creation == 5.0 and seen[1]["q"].phase == "Pending"
    # t=10: v is gone, w has finished, q is nominated.
    assert "v" not in seen[2] and seen[2]["w"].phase == "Succeeded" and seen[2]["q"].nominated_node == "n2"
    # t=15: w is gone, p runs on n0, q's dropped nomination is cleared and its reason written.
    assert set(seen[3]) == {"p", "q"}
    assert (seen[3]["p"].node_name, seen[3]["p"].phase, seen[3]["p"].nominated_node) == ("n0", "Running", "")
    assert seen[3]["q"].nominated_node == "" and seen[3]["q"].scheduled_message == "no node"


def test_the_driver_finishes_work_counted_from_its_bind_and_leaves_other_schedulers_alone() -> None:
    """A pod bound at t=5 with 10 s of work is Succeeded at t=15; a pending pod of another scheduler
    keeps its nomination, and one out of the driver's namespace too."""
    driver = Driver.of(
        Snapshot(
            (node("n0"),),
            (
                pod("a", priority=10),
                pod("x", scheduler="default-scheduler", nominated="n0"),
                pod("y", ns="other", nominated="n0"),
            ),
        ),
        settings=Settings(namespace="default"),
        tick=5.0,
        lifetimes={key("a"): 10.0},
        planner=lambda snapshot, _: Plan(binds=(bind("a", "n0"),)) if snapshot.now == 5.0 else Plan(),
    )
    driver.run(4)
    phases = [next((p.phase for p in s.snapshot.pods if p.name == "a"), None) for s in driver.history]
    assert phases == ["Pending", "Pending", "Running", "Succeeded"]
    last = {p.name: p for p in driver.history[-1].snapshot.pods}
    assert last["x"].nominated_node == "n0" and last["y"].nominated_node == "n0"
