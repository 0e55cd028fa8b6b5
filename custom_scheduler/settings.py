"""What the user chose on the command line, as one frozen value, and the node selector it names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SCHEDULER_NAME = "custom-scheduler"

# A label key: optional DNS-subdomain prefix and a name (the API server's own rule, loosely).
_KEY = r"(?:[A-Za-z0-9.\-]{1,253}/)?[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^()]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


class SelectorError(ValueError):
    """A label selector that does not parse."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector: `key op values`."""

    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a set of labels satisfies this term."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class Selector:
    """A label selector (`kubectl -l` syntax); the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every term holds for these labels."""
        return all(r.matches(labels) for r in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _quoted(term: str, limit: int = 60) -> str:
    """A term for an error message: quoted, and cut when long (a selector may be any length)."""
    term = term.strip()
    if len(term) <= limit:
        return repr(term)
    return f"{term[:limit]!r}... ({len(term):,} characters)"


def parse_selector(text: str) -> Selector:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`; raise SelectorError naming the bad term."""
    if not text.strip():
        return Selector()
    requirements = []
    for term in _split_terms(text):
        if m := _SET_RE.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(f"label selector term {_quoted(term)} lists no values")
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(term):
            op = "notin" if m.group(2) == "!=" else "in"
            requirements.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _EXISTS_RE.match(term):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"label selector term {_quoted(term)} is not valid")
    return Selector(tuple(requirements), text.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything that shapes what the scheduler does; the planner reads the first three."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    namespace: str | None = None
    node_selector: Selector = Selector()
    interval: float = 5.0
    debounce: float = 0.05
    # Writes of a pass in flight at once: 64, as many as it takes to keep a busy API server's
    # pipeline full (BENCHMARKS.md: 64 binds 30% faster than 32, 128 no faster).
    max_concurrency: int = 64
    dry_run: bool = False
    log_format: str = "auto"
    log_level: str = "info"
    kubeconfig: str | None = None
    context: str | None = None
    # Leader election (kube-scheduler's defaults) and the health/metrics port (0: off; the command
    # line serves 10251 unless told otherwise) on `bind_address` (kube-scheduler's default: every
    # interface).
    leader_elect: bool = False
    lease_name: str = "custom-scheduler"
    lease_namespace: str | None = None  # None: the pod's own namespace, else "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    health_port: int = 0
    bind_address: str = "0.0.0.0"
    # A victim still there this long after its deletionTimestamp (which includes its grace
    # period) is stuck (a finalizer, a lost kubelet): its nominee stops waiting for it.
    stuck_after: float = 60.0
    # How long a unit may wait before it reserves nodes as they free up (SPEC 6a); None: never.
    reserve_after: float | None = 30.0

    @property
    def event_workers(self) -> int:
        """Events posted at once, in the background."""
        return max(1, self.max_concurrency // 8)

    @property
    def reason_workers(self) -> int:
        """Reasons for waiting (a condition, then an event) written at once, in the background."""
        return max(1, self.max_concurrency // 4)

    @property
    def connections(self) -> int:
        """HTTP connections: every writer, the three watches, the lease and a spare or two."""
        return self.max_concurrency + self.event_workers + self.reason_workers + 8
