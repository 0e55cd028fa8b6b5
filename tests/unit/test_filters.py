"""Where a pod may run, filter by filter (SPEC 2, v2): tables of cases against kube-scheduler's rules."""

from __future__ import annotations

import pytest

from custom_scheduler.model import Constraints, Expression, Node, Taint, Term, Toleration
from custom_scheduler.planner.filters import AFFINITY, Filters, matches, taint_reason, tolerates

# --- TaintToleration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        (Toleration("k", "Equal", "v", "NoSchedule"), Taint("k", "v", "NoSchedule"), True),
        (Toleration("k", "", "v", "NoSchedule"), Taint("k", "v", "NoSchedule"), True),  # "" is Equal
        (Toleration("k", "Equal", "w", "NoSchedule"), Taint("k", "v", "NoSchedule"), False),
        (Toleration("k", "Equal", "", "NoSchedule"), Taint("k", "", "NoSchedule"), True),
        (Toleration("k", "Exists", "", "NoSchedule"), Taint("k", "anything", "NoSchedule"), True),
        (Toleration("other", "Exists", "", "NoSchedule"), Taint("k", "v", "NoSchedule"), False),
        (Toleration("", "Exists", "", ""), Taint("k", "v", "NoExecute"), True),  # tolerates everything
        (Toleration("", "Exists", "", "NoSchedule"), Taint("k", "v", "NoExecute"), False),
        (Toleration("k", "Exists", "", ""), Taint("k", "v", "NoExecute"), True),  # any effect
        (Toleration("k", "Equal", "v", "NoExecute"), Taint("k", "v", "NoSchedule"), False),
        (Toleration("k", "Gt", "1", ""), Taint("k", "2", "NoSchedule"), False),  # unknown operator
    ],
)
def test_toleration_rules(toleration: Toleration, taint: Taint, tolerated: bool) -> None:
    assert tolerates(toleration, taint) is tolerated


def _fit(nodes: list[Node], constraints: Constraints, **kw: object) -> tuple[list[str], dict[str, int]]:
    found = Filters(nodes, kw.get("used", {}), kw.get("pods_on", {})).fit(constraints)  # type: ignore[arg-type]
    return [n.name for i, n in enumerate(nodes) if found.nodes >> i & 1], {
        reason: bits.bit_count() for reason, bits in found.unfit
    }


CONTROL_PLANE = Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")


def test_taints_that_keep_pods_off_and_those_that_do_not() -> None:
    nodes = [
        Node("cp", taints=(CONTROL_PLANE,)),
        Node("soft", taints=(Taint("prefer", "x", "PreferNoSchedule"),)),  # a preference: ignored
        Node("ml", taints=(Taint("dedicated", "ml", "NoSchedule"), Taint("gpu", "yes", "NoExecute"))),
        Node("plain"),
    ]
    assert _fit(nodes, Constraints()) == (
        ["soft", "plain"],
        {taint_reason(CONTROL_PLANE): 1, "node(s) had untolerated taint {dedicated: ml}": 1},
    )
    tolerant = Constraints(tolerations=(Toleration("dedicated", "Equal", "ml", "NoSchedule"),))
    assert _fit(nodes, tolerant) == (
        ["soft", "plain"],
        {taint_reason(CONTROL_PLANE): 1, "node(s) had untolerated taint {gpu: yes}": 1},
    )
    anything = Constraints(tolerations=(Toleration(operator="Exists"),))
    assert _fit(nodes, anything) == (["cp", "soft", "ml", "plain"], {})


# --- NodeAffinity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value", "matched"),
    [
        (Expression("k", "In", ("a", "b")), "a", True),
        (Expression("k", "In", ("a", "b")), "c", False),
        (Expression("k", "In", ("a",)), None, False),
        (Expression("k", "NotIn", ("a",)), "b", True),
        (Expression("k", "NotIn", ("a",)), "a", False),
        (Expression("k", "NotIn", ("a",)), None, True),  # no label: not in
        (Expression("k", "Exists"), "", True),
        (Expression("k", "Exists"), None, False),
        (Expression("k", "DoesNotExist"), None, True),
        (Expression("k", "DoesNotExist"), "x", False),
        (Expression("k", "Gt", ("4",)), "8", True),
        (Expression("k", "Gt", ("8",)), "8", False),
        (Expression("k", "Lt", ("8",)), "4", True),
        (Expression("k", "Lt", ("8",)), "-1", True),
        (Expression("k", "Gt", ("4",)), "eight", False),  # not an integer: no match
        (Expression("k", "Gt", ("four",)), "8", False),
        (Expression("k", "Gt", ("1", "2")), "8", False),  # Gt takes one value
        (Expression("k", "Gt", ("4",)), None, False),
        (Expression("k", "Exists", ("a",)), "a", False),  # Exists takes no values
        (Expression("k", "Like", ("a",)), "a", False),
    ],
)
def test_expression_operators(expression: Expression, value: str | None, matched: bool) -> None:
    assert matches(expression, value) is matched


POOLS = [
    Node("a1", labels={"pool": "a", "gpu": "h100", "gpus": "8"}),
    Node("a2", labels={"pool": "a", "gpu": "a100", "gpus": "4"}),
    Node("b1", labels={"pool": "b"}),
]


@pytest.mark.parametrize(
    ("constraints", "fits"),
    [
        (Constraints(node_selector=(("pool", "a"),)), ["a1", "a2"]),
        (Constraints(node_selector=(("pool", "a"), ("gpu", "h100"))), ["a1"]),
        (Constraints(node_selector=(("pool", "c"),)), []),
        # Terms are ORed; inside a term, expressions are ANDed.
        (
            Constraints(
                affinity=(
                    Term((Expression("pool", "In", ("a",)), Expression("gpus", "Gt", ("6",)))),
                    Term((Expression("pool", "In", ("b",)),)),
                )
            ),
            ["a1", "b1"],
        ),
        (Constraints(affinity=(Term((Expression("gpu", "DoesNotExist"),)),)), ["b1"]),
        # A term with no requirement matches nothing; so does an empty list of terms.
        (Constraints(affinity=(Term(),)), []),
        (Constraints(affinity=()), []),
        # Node selector and affinity must both hold.
        (
            Constraints(
                node_selector=(("pool", "a"),), affinity=(Term((Expression("gpu", "In", ("a100",)),)),)
            ),
            ["a2"],
        ),
        # Fields: metadata.name only, with In or NotIn.
        (Constraints(affinity=(Term(fields=(Expression("metadata.name", "In", ("b1", "zz")),)),)), ["b1"]),
        (
            Constraints(
                affinity=(
                    Term(
                        (Expression("pool", "In", ("a",)),),
                        (Expression("metadata.name", "NotIn", ("a1",)),),
                    ),
                )
            ),
            ["a2"],
        ),
        (Constraints(affinity=(Term(fields=(Expression("metadata.uid", "In", ("x",)),)),)), []),
    ],
)
def test_node_selector_and_required_affinity(constraints: Constraints, fits: list[str]) -> None:
    found, unfit = _fit(POOLS, constraints)
    assert found == fits
    assert unfit == ({AFFINITY: 3 - len(fits)} if len(fits) < 3 else {})


# --- NodeResourcesFit --------------------------------------------------------------------------

GPU = "nvidia.com/gpu"


def test_requests_against_allocatable_less_other_pods() -> None:
    nodes = [
        Node("big", allocatable={"cpu": 64_000, "memory": 2**40, GPU: 8, "pods": 110}),
        Node("used", allocatable={"cpu": 64_000, "memory": 2**40, GPU: 8, "pods": 110}),
        Node("cpu-only", allocatable={"cpu": 64_000, "memory": 2**40, "pods": 110}),  # lists no gpu
        Node("full", allocatable={"cpu": 64_000, "memory": 2**40, GPU: 8, "pods": 2}),
        Node("bare"),  # lists nothing: no resource, and no limit on pods
    ]
    used = {"used": {GPU: 1, "cpu": 500}}
    pods_on = {"full": 2, "used": 3}
    eight = Constraints(requests=((GPU, 8),))
    assert _fit(nodes, eight, used=used, pods_on=pods_on) == (
        ["big"],
        {f"Insufficient {GPU}": 3, "Too many pods": 1},
    )
    nothing = Constraints()
    assert _fit(nodes, nothing, used=used, pods_on=pods_on) == (
        ["big", "used", "cpu-only", "bare"],
        {"Too many pods": 1},
    )
    # A node lacking two resources counts under each, as kube-scheduler's histogram does.
    both = Constraints(requests=(("cpu", 64_000), (GPU, 1)))
    assert _fit(nodes, both, used=used, pods_on=pods_on) == (
        ["big"],
        {"Insufficient cpu": 2, f"Insufficient {GPU}": 2, "Too many pods": 1},
    )


def test_filters_count_a_node_under_the_first_it_fails() -> None:
    nodes = [
        Node("cp", labels={"pool": "gpu"}, taints=(CONTROL_PLANE,), allocatable={GPU: 8}),
        Node("cpu1", labels={"pool": "cpu"}),
        Node("cpu2", labels={"pool": "cpu"}),
        Node("gpu1", labels={"pool": "gpu"}, allocatable={GPU: 4}),
        Node("gpu2", labels={"pool": "gpu"}, allocatable={GPU: 8}),
    ]
    constraints = Constraints(node_selector=(("pool", "gpu"),), requests=((GPU, 8),))
    found = Filters(nodes, {}, {}).fit(constraints)
    assert found.unfit == (
        (taint_reason(CONTROL_PLANE), 0b00001),
        (AFFINITY, 0b00110),
        (f"Insufficient {GPU}", 0b01000),
    )
    assert found.nodes == 0b10000
