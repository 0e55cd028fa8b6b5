"""One scheduling pass as a pure function: snapshot in, plan out (being written)."""

from __future__ import annotations

from custom_scheduler.model import Plan, Snapshot
from custom_scheduler.settings import Settings


def plan(snapshot: Snapshot, *, settings: Settings) -> Plan:
    """Decide one pass: binds, nominations, evictions and reasons for pods left pending."""
    raise NotImplementedError
