"""No starvation (SPEC 6a): how long a unit has waited, and what it could have were the nodes held
by pods of its priority or lower free.

Backfill keeps nodes busy, but alone it lets a large gang wait forever behind a stream of small
units of its priority: a node that frees is taken at once by a unit that fits, and the gang never
sees enough free nodes at once. So the first unit in pass order that cannot be placed, has waited
`--reserve-after` and could be placed were those nodes free, reserves the free nodes it may use,
from pass to pass, until it holds its whole need (the pass does the reserving; this module says
who is due and who could be placed).
"""

from __future__ import annotations

from collections.abc import Mapping

from custom_scheduler.planner.nodes import Nodes, NodeState
from custom_scheduler.planner.units import Unit

S = NodeState


def waiting_since(unit: Unit) -> float:
    """A single pod waits since its creation; a gang since the member that completed its quorum
    was created."""
    gang = unit.gang
    if gang is None:
        return unit.members[0].creation
    created = sorted(p.creation for p in (*gang.pending, *gang.occupying))
    return created[min(gang.min_pending, len(created)) - 1]


def held_by_its_priority_or_lower(nodes: Nodes, priority: int, taken_at: Mapping[int, int]) -> int:
    """The nodes that would be free were every pod of `priority` or lower gone: free and
    terminating ones, those running such pods, those reserved or taken this pass (`taken_at`,
    by the taker's priority) for units of such priority."""
    held = nodes.bits[S.FREE] | nodes.bits[S.TERMINATING] | nodes.running_below(priority + 1)
    for state in (S.RESERVED_FREE, S.RESERVED_TERMINATING, S.RESERVED_RUNNING):
        bits = nodes.bits[state]
        while bits:
            low = bits & -bits
            node = low.bit_length() - 1
            holder = nodes.holder.get(node)
            running_higher = state is S.RESERVED_RUNNING and nodes.level[node] > priority
            if holder is not None and holder.priority <= priority and not running_higher:
                held |= low
            bits ^= low
    for taker, bits in taken_at.items():
        if taker <= priority:
            held |= bits
    return held


def reason(unit: Unit, *, held: int, waited: float, reserve_after: float) -> str:
    """What the reserving unit's pods say: what it holds, of what it needs, and for how long."""
    gang = unit.gang
    subject = f"gang {gang.label}" if gang is not None else f"pod {unit.members[0].key}"
    reserving = max(int(waited - reserve_after), 0)
    return f"{subject} reserves {held} of the {unit.need} nodes it needs (for {reserving}s)"
