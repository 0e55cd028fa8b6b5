"""The command line: `custom-scheduler run` (the scheduler) and `custom-scheduler plan` (one pass, read-only).

Bad input is the user's, not a crash: `plan` on an unreadable file, bad JSON or YAML (a value
YAML cannot construct, aliases that would multiply the work), or an object without the fields it
needs exits with status 2 and one line on stderr naming the file and the problem, never a
traceback.
"""

from __future__ import annotations

import argparse
import codecs
import gc
import ipaddress
import itertools
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from custom_scheduler import __version__
from custom_scheduler.convert import ConvertError, snapshot_from_list
from custom_scheduler.model import Snapshot
from custom_scheduler.planner import plan
from custom_scheduler.settings import DEFAULT_SCHEDULER_NAME, SelectorError, Settings, parse_selector

EXIT_BAD_INPUT = 2
TAKE_SNAPSHOT = "kubectl get nodes,pods,priorityclasses -A -o json"
EXIT_BUG = 1
# kube-scheduler's old plain-HTTP port (it now serves HTTPS on 10259): a scheduler beside it on a
# control-plane node does not take its port.
DEFAULT_HEALTH_PORT = 10251
EXIT_BROKEN_PIPE = 141  # as a filter killed by SIGPIPE exits
MAX_YAML_DEPTH = 1000
# YAML aliases share one node, but whatever reads the document walks it once per reference: a
# few MB of aliases can stand for gigabytes of labels. They may add at most as many nodes as the
# document has of its own, and ALIAS_ALLOWANCE besides (room for hand-written `<<: *defaults`).
ALIAS_ALLOWANCE = 100_000
_EXPANSION_CAP = 10**15  # more nodes than any file holds
# Where an alias (`*name`) may stand: after a space, a line break, `[`, `{`, `,` or `:`. The
# regular expression may also find one inside a string (the walk then finds nothing to refuse).
_ALIAS = re.compile(rb"(?:^|[\s\[{,:])\*[^\s,\[\]{}]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class UsageError(Exception):
    """Input the user must fix; the message is the one line printed."""


def _scope_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scheduler-name",
        default=DEFAULT_SCHEDULER_NAME,
        help=f"schedule pods whose spec.schedulerName is this (default {DEFAULT_SCHEDULER_NAME})",
    )
    parser.add_argument(
        "--namespace", default=None, help="only this namespace's pods (default: all namespaces)"
    )
    parser.add_argument(
        "--node-selector",
        default="",
        help="only nodes matching this label selector, e.g. 'pool=batch,zone in (a,b)'",
    )


def _reserve_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reserve-after",
        default="30s",
        metavar="DURATION|off",
        help="how long a unit that cannot be placed waits before it reserves nodes as they free up "
        "(SPEC 6a): 30s (default), 90, 2m, 0 (at once) or off (never)",
    )


def parse_duration(text: str, flag: str) -> float | None:
    """`30s`, `90`, `2m`, `1h`, `0` in seconds; `off` is None; anything else a UsageError."""
    value = text.strip().lower()
    if value == "off":
        return None
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:], 0)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise UsageError(f"{flag}: {text[:40]!r} is not a duration (30s, 90, 2m, 0 or off)")
    return seconds


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: in-cluster, else $KUBECONFIG, else ~/.kube/config)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current context)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of both commands."""
    parser = argparse.ArgumentParser(
        prog="custom-scheduler",
        description="A Kubernetes scheduler: one pod per node, priority preemption, gang scheduling.",
    )
    parser.add_argument("--version", action="version", version=f"custom-scheduler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,plan,status}")

    run = sub.add_parser("run", help="schedule pods until stopped (SIGTERM or SIGINT)")
    _cluster_flags(run)
    _scope_flags(run)
    run.add_argument(
        "--interval", type=float, default=5.0, help="seconds between passes without changes (default 5)"
    )
    run.add_argument(
        "--max-concurrency",
        type=int,
        default=64,
        help="binds, evictions and nominations in flight at once (default 64); events and reasons "
        "for waiting take a quarter and an eighth of that besides",
    )
    run.add_argument("--dry-run", action="store_true", help="plan and log, write nothing to the cluster")
    run.add_argument(
        "--log-format",
        choices=("json", "console", "auto"),
        default="auto",
        help="json lines, or console; auto: console on a terminal, else json (default)",
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="info (default); debug adds every pass, idle ones too, and a bug's whole traceback",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="run passes only while holding a Lease (for several replicas)",
    )
    run.add_argument(
        "--lease-name", default="custom-scheduler", help="the Lease's name (default custom-scheduler)"
    )
    run.add_argument(
        "--lease-namespace", default=None, help="the Lease's namespace (default: the pod's own, else default)"
    )
    # kube-scheduler's flags and defaults. The gap between the lease duration and the renew
    # deadline is the margin for a write checked just in time to reach the server.
    run.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long others wait after the leader's last renewal before taking over (default 15)",
    )
    run.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long after its last renewal the leader stops writing and leading (default 10)",
    )
    run.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to renew, or to try for the lease (default 2)",
    )
    run.add_argument(
        "--stuck-after",
        type=float,
        default=60.0,
        help="seconds past a victim's deletionTimestamp before its nominee stops waiting (default 60)",
    )
    run.add_argument(
        "--health-port",
        type=int,
        default=DEFAULT_HEALTH_PORT,
        metavar="PORT",
        help=f"serve /healthz, /livez, /readyz and /metrics over HTTP on this port "
        f"(default {DEFAULT_HEALTH_PORT}; 0: off)",
    )
    _reserve_flag(run)
    run.add_argument(
        "--bind-address",
        default="0.0.0.0",
        metavar="IP",
        help="the address to serve --health-port on (default 0.0.0.0: every interface, IPv4 and IPv6)",
    )

    plan_ = sub.add_parser(
        "plan",
        help="print what one pass would do (JSON), from a snapshot file or a live cluster; writes nothing",
    )
    _snapshot_flags(plan_)
    status = sub.add_parser(
        "status",
        help="gangs, waiting pods and nodes at a glance (a table, or -o json), from a snapshot file or "
        "a live cluster; writes nothing",
    )
    _snapshot_flags(status)
    status.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="table (default) or json"
    )
    return parser


def _snapshot_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snapshot",
        metavar="FILE|-",
        help="output of `kubectl get nodes,pods,priorityclasses -A -o json` (or -o yaml); - for stdin",
    )
    _cluster_flags(parser)
    _scope_flags(parser)
    _reserve_flag(parser)
    parser.add_argument(
        "--now",
        type=_rfc3339,
        metavar="RFC3339",
        help="plan as of this moment, e.g. 2026-12-01T10:00:00Z (default: the current time; on a "
        "live cluster, the API server's), so that a snapshot gives the same answer tomorrow",
    )


def _rfc3339(text: str) -> float:
    """An RFC 3339 time (`2025-06-01T12:00:00Z`) as epoch seconds; argparse says so when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time such as 2025-06-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (end it with Z for UTC)")
    return moment.timestamp()


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; a bad selector or value raises UsageError."""
    try:
        selector = parse_selector(args.node_selector)
    except SelectorError as error:
        raise UsageError(f"--node-selector: {error}") from None
    extra: dict[str, Any] = {}
    if args.command in ("plan", "status") and args.snapshot is not None and (args.kubeconfig or args.context):
        raise UsageError("--snapshot reads a file, --kubeconfig and --context a cluster: give one")
    if args.command == "run":
        if args.interval <= 0:
            raise UsageError("--interval must be more than 0 seconds")
        if args.max_concurrency < 1:
            raise UsageError("--max-concurrency must be at least 1")
        lease, renew, retry = (
            args.leader_elect_lease_duration,
            args.leader_elect_renew_deadline,
            args.leader_elect_retry_period,
        )
        # client-go's rules: a renewal can fail and be retried before the deadline, and the
        # deadline leaves a margin before anyone else may take over.
        if not lease > renew > 1.2 * retry > 0:
            raise UsageError(
                "leader election needs --leader-elect-lease-duration > --leader-elect-renew-deadline "
                "> 1.2 x --leader-elect-retry-period > 0"
            )
        extra = {
            "interval": args.interval,
            "max_concurrency": args.max_concurrency,
            "dry_run": args.dry_run,
            "log_format": args.log_format,
            "log_level": args.log_level,
            "leader_elect": args.leader_elect,
            "lease_name": args.lease_name,
            "lease_namespace": args.lease_namespace,
            "lease_duration": lease,
            "renew_deadline": renew,
            "retry_period": retry,
            "health_port": args.health_port,
            "bind_address": args.bind_address,
            "stuck_after": args.stuck_after,
        }
        if not 0 <= args.health_port <= 65535:
            raise UsageError("--health-port must be from 0 to 65535")
        try:
            ipaddress.ip_address(args.bind_address)
        except ValueError:
            raise UsageError(f"--bind-address: {args.bind_address!r} is not an IP address") from None
    return Settings(
        scheduler_name=args.scheduler_name,
        namespace=args.namespace or None,
        node_selector=selector,
        kubeconfig=args.kubeconfig,
        context=args.context,
        reserve_after=parse_duration(args.reserve_after, "--reserve-after"),
        **extra,
    )


def _read_snapshot(source: str) -> Any:
    """The parsed document: JSON first (fast), else YAML."""
    name = "<stdin>" if source == "-" else source
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as error:
        raise UsageError(f"{name}: cannot read: {error.strerror or error}") from None
    data = data.removeprefix(codecs.BOM_UTF8)  # some editors and shells write one; orjson refuses it
    if not data.strip():
        raise UsageError(f"{name}: is empty")
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as json_error:
        if data.lstrip()[:1] in (b"{", b"["):
            raise UsageError(f"{name}: invalid JSON: {json_error}") from None
    # libyaml recurses on nested flow collections ([[[...]]]) and crashes the interpreter
    # beyond some ten thousand levels: refuse them first, as orjson does past 1,024.
    opening = data.count(b"[") + data.count(b"{")  # a bound on the depth, in C: most files stop here
    if opening > MAX_YAML_DEPTH and (depth := _flow_depth(data)) > MAX_YAML_DEPTH:
        raise UsageError(
            f"{name}: neither JSON nor YAML: nested {depth} levels deep (at most {MAX_YAML_DEPTH})"
        )
    return _load_yaml(data, name)


def _load_yaml(data: bytes, name: str) -> Any:
    """One YAML document: a timestamp that is no date stays text, as in JSON; aliases are bounded."""
    import yaml
    from yaml.constructor import ConstructorError

    try:
        from yaml import CSafeLoader as Loader  # libyaml: several times faster
    except ImportError:  # a PyYAML built without libyaml
        from yaml import SafeLoader as Loader  # type: ignore[assignment]

    class SnapshotLoader(Loader):
        """SafeLoader whose every construction failure names the node it was at."""

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            # PyYAML's constructors fail so on a value they cannot make: an int of 5,000 digits,
            # or a value tagged as what it is not (`!!int abc`, `!!bool maybe`).
            except (ValueError, OverflowError, LookupError, AttributeError, TypeError) as error:
                problem = str(error).split(";")[0]  # not Python's advice on its own limits
                if isinstance(error, KeyError):  # it says only the key
                    problem = f"{node.tag.rsplit(':', 1)[-1]} cannot be {problem}"
                raise ConstructorError(None, None, problem, node.start_mark) from None

        def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
            # An API object holds timestamps as strings (JSON has no other kind): an impossible
            # date (2020-13-01) is the text it would be in JSON, not an error, wherever it is.
            try:
                return super().construct_yaml_timestamp(node)
            except (ValueError, AttributeError):  # no such date; no date at all (`!!timestamp soon`)
                return self.construct_scalar(node)

    SnapshotLoader.add_constructor("tag:yaml.org,2002:timestamp", SnapshotLoader.construct_yaml_timestamp)
    loader = SnapshotLoader(data)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _ALIAS.search(data):  # without an alias every node is there once: nothing to count
            _refuse_alias_expansion(root, name)
        return loader.construct_document(root)
    except yaml.YAMLError as yaml_error:
        raise UsageError(f"{name}: neither JSON nor YAML: {_yaml_problem(yaml_error)}") from None
    finally:
        loader.dispose()


def _refuse_alias_expansion(root: Any, name: str) -> None:
    """Raise UsageError when aliases make the document contain itself, or stand for too many nodes.

    One walk over the distinct nodes counts what the document holds and what it stands for (each
    alias counted at the size of what it names): a bomb is refused in about the time it took to
    parse, before anything walks it once per reference.
    """
    from yaml import MappingNode, SequenceNode

    if not isinstance(root, MappingNode | SequenceNode):
        return
    expanded: dict[int, int] = {}  # id(collection) -> the nodes it stands for
    walking: set[int] = set()  # collections whose contents are being walked: the current path
    scalars = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if not finished and id(node) in expanded:
            continue
        parts = node.value if isinstance(node, SequenceNode) else [p for kv in node.value for p in kv]
        if finished:
            walking.discard(id(node))
            # Capped: a bomb's true count has hundreds of digits; past the cap it is too many anyway.
            expanded[id(node)] = min(1 + sum(expanded.get(id(p), 1) for p in parts), _EXPANSION_CAP)
            continue
        if id(node) in walking:
            mark = node.start_mark
            raise UsageError(
                f"{name}: refused: a YAML alias names a node that contains it "
                f"(line {mark.line + 1}, column {mark.column + 1})"
            )
        walking.add(id(node))
        stack.append((node, True))
        for part in parts:
            if isinstance(part, MappingNode | SequenceNode):
                stack.append((part, False))
            else:
                scalars += 1  # a scalar counts once wherever it is (an aliased one, once per alias)
    own = len(expanded) + scalars
    bound = 2 * own + ALIAS_ALLOWANCE
    if expanded[id(root)] > bound:
        raise UsageError(
            f"{name}: refused: its YAML aliases (*name) make its {own:,} nodes stand for more than "
            f"{bound:,} (aliases may add as many nodes as the file holds, plus {ALIAS_ALLOWANCE:,})"
        )


def _flow_depth(data: bytes) -> int:
    """The deepest nesting of brackets and braces (those inside strings count too: an upper bound)."""
    brackets = data.translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(1 if b in b"[{" else -1 for b in brackets), default=0)


def _yaml_problem(error: Exception) -> str:
    """What went wrong and where, on one line (PyYAML's own text spans several)."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if isinstance(problem, str) and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split()) or type(error).__name__


# The client, HTTP and async libraries are imported only by the commands that talk to a
# cluster: `plan --snapshot` starts in a fraction of the time without them.
def _snapshot(args: argparse.Namespace, settings: Settings) -> Snapshot:
    """The snapshot `plan` and `status` read: the file (or stdin) named, else the live cluster's."""
    # A one-shot command: the cyclic collector would only rescan the parsed snapshot while it
    # is converted and planned (most of the run time on a large cluster).
    gc.disable()
    if args.snapshot is not None:
        document = _read_snapshot(args.snapshot)
        try:
            snapshot = snapshot_from_list(document)
        except ConvertError as error:
            name = "<stdin>" if args.snapshot == "-" else args.snapshot
            raise UsageError(f"{name}: {error}") from None
    else:
        import anyio

        from custom_scheduler.service import live_snapshot_of

        snapshot = _from_cluster(lambda: anyio.run(live_snapshot_of, settings))
    if not snapshot.nodes:
        # Every pod then waits: most likely the snapshot was taken without `nodes`, or of the wrong
        # cluster. Said, not refused: an empty cluster is a cluster too.
        hint = (
            "the cluster has no nodes (is it the one you meant? --kubeconfig, --context)"
            if args.snapshot is None
            else f"the snapshot has no nodes (take it with `{TAKE_SNAPSHOT}`)"
        )
        print(f"custom-scheduler: warning: {hint}", file=sys.stderr)
    # A pass plans as of a moment (how long a unit has waited, whether a victim is stuck): --now,
    # else the current time (a live cluster's snapshot is at the API server's).
    if args.now is not None:
        snapshot = Snapshot(snapshot.nodes, snapshot.pods, snapshot.priority_classes, now=args.now)
    elif args.snapshot is not None:
        snapshot = Snapshot(snapshot.nodes, snapshot.pods, snapshot.priority_classes, now=time.time())
    return snapshot


def _print(text: str) -> int:
    """Write the command's output; 0, or 141 when the reader left early (`| head`)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left: nothing more to say, and nothing for the exit to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return 0


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    result = plan(_snapshot(args, settings), settings=settings)
    return _print(json.dumps(result.to_json()) + "\n")


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from custom_scheduler.status import render, status_of

    status = status_of(_snapshot(args, settings), settings=settings)
    return _print(json.dumps(status.to_json()) + "\n" if args.output == "json" else render(status))


T = TypeVar("T")


def _from_cluster(read: Callable[[], T]) -> T:
    """What `read` gets from the cluster; a problem the user can fix (the kubeconfig, the server's
    address, credentials, RBAC) raises UsageError with one line that names it."""
    from custom_scheduler.kube import ApiError, KubeconfigError, Unreachable

    try:
        return read()
    except Exception as error:
        cause = _leaf(error)
        if isinstance(cause, KubeconfigError | Unreachable):
            raise UsageError(str(cause)) from None
        if isinstance(cause, ApiError):
            raise UsageError(f"the API server refused: {cause}") from None
        if isinstance(cause, TimeoutError | ConnectionError):
            raise UsageError(f"the API server did not answer: {type(cause).__name__}: {cause}") from None
        raise


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups of a task group."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _run(settings: Settings) -> int:
    import anyio
    import structlog

    from custom_scheduler.kube import ApiError, KubeconfigError
    from custom_scheduler.metrics import ServeError
    from custom_scheduler.service import run
    from custom_scheduler.telemetry import configure_logging

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    log = structlog.get_logger(component="main")
    try:
        anyio.run(run, settings)
    except Exception as error:
        cause = _leaf(error)
        if isinstance(cause, KubeconfigError):
            raise UsageError(str(cause)) from None
        if isinstance(cause, ServeError):
            raise UsageError(f"--health-port {settings.health_port}: {cause}") from None
        if isinstance(cause, ApiError):
            # The scheduler's own standing with the API server (401: credentials; 403: a rule its
            # RBAC lacks; 404: a kind the server does not serve): the user's to fix, said in one line.
            log.critical("scheduler_failed", error=str(cause))
            return EXIT_BAD_INPUT
        # A bug: one line that says what and where; the whole traceback with --log-level debug.
        # Kubernetes restarts the scheduler with a fresh cache.
        details: dict[str, Any] = {"exc_info": cause} if settings.log_level == "debug" else {}
        log.critical(
            "scheduler_failed", error=f"{type(cause).__name__}: {cause}", where=_where(cause), **details
        )
        return EXIT_BUG
    return 0


def _where(error: BaseException) -> str:
    """Where an exception was raised: `file.py:123 in function`, the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def _fail(message: str) -> NoReturn:
    print(f"custom-scheduler: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m custom_scheduler`."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command == "plan":
            return _plan(args, settings)
        if args.command == "status":
            return _status(args, settings)
        return _run(settings)
    except UsageError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
