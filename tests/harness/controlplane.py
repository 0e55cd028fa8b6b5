"""A real local control plane: etcd, kube-apiserver, kube-controller-manager and KWOK as processes.

Tooling, not product (it is not in the wheel or the image): used by the end-to-end tests,
`make demo`, `make cluster-up`, the soak and the benchmarks. The binaries
come from `hack/build.sh` (built once from pinned Go modules into a cache outside the repo).
Everything listens on free loopback ports, with a temporary directory for etcd's data,
generated certificates (a CA, the serving certificate, client certificates) and the
service-account signing key. Authorization is RBAC, as on a real cluster; the admin identity
is in group `system:masters`. KWOK plays the kubelets of nodes that carry `KWOK_LABEL`.

Each process runs in its own process group and is stopped by group (SIGTERM, then SIGKILL),
so a stop leaves no process behind; `ControlPlane` is a context manager, and `stop()` also
removes its directory. etcd and kube-apiserver can be stopped and started again on their own
(for tests of an API server that goes away mid-run).

    python -m tests.harness.controlplane up     # start detached; prints `export KUBECONFIG=...`
    python -m tests.harness.controlplane down   # stop it
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]  # tests/harness/controlplane.py
KWOK_LABEL = ("custom-scheduler.dev/kwok", "true")
# A node annotated so stays as its status was last set: KWOK does not make it Ready again (a
# broken kubelet, for as long as a test wants one). Set it before the status, remove it to heal.
HOLD_NOT_READY = "custom-scheduler.dev/hold-not-ready"
CLUSTER_DIR = REPO / ".cluster"
WORKDIR_PREFIX = "custom-scheduler-cp-"
OWNER_FILE = "owner.pid"  # the process whose control plane this directory holds
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kwok", "kubectl")
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "disruption-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "replicaset-controller",
    "deployment-controller",
    # Lifts the not-ready taint the API server puts on every new node, once the node is Ready
    # (without it no node ever takes a pod: kube-scheduler and this scheduler honour taints).
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
)

# KWOK's stages: nodes become Ready and keep a lease; pods become Running and stay so; a
# deleted pod goes when its grace period ends. See the file for why.
KWOK_STAGES = REPO / "hack" / "kwok" / "stages.yaml"


def kwok_node(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A Node for KWOK to play: labelled `KWOK_LABEL` (and `labels`); `allocatable` also sets capacity;
    `taints` as the API writes them ({"key", "value", "effect"})."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {KWOK_LABEL[0]: KWOK_LABEL[1], **(labels or {})},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
    }
    if allocatable:
        body["status"] = {"allocatable": dict(allocatable), "capacity": dict(allocatable)}
    if taints:
        body["spec"] = {"taints": [dict(t) for t in taints]}
    return body


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, found or started; the message says why and what to do."""


def bin_dir() -> Path:
    """Where hack/build.sh puts the binaries (it owns the versions; this asks it)."""
    out = subprocess.run(
        [str(REPO / "hack" / "build.sh"), "--print-bin-dir"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def missing_binaries(directory: Path | None = None) -> list[str]:
    """The binaries not built yet (`make controlplane` builds them)."""
    where = directory or bin_dir()
    return [b for b in BINARIES if not os.access(where / b, os.X_OK)]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(pki: Path) -> None:
    """A CA, the API server's serving certificate, client certificates, the service-account key."""
    pki.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=local-ca",
        cwd=pki,
    )
    (pki / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    certs = {
        "server": ("/CN=kube-apiserver", "server.ext"),
        "admin": ("/O=system:masters/CN=admin", "client.ext"),
        # The harness trusts its own controllers; RBAC still governs every identity under test.
        "controller-manager": ("/O=system:masters/CN=system:kube-controller-manager", "client.ext"),
        "scheduler": ("/CN=system:kube-scheduler", "client.ext"),
        "kwok": ("/O=system:masters/CN=kwok", "client.ext"),
    }
    for name, (subject, ext) in certs.items():
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "30", "-extfile", ext, "-out", f"{name}.crt", cwd=pki,
        )  # fmt: skip
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _kubeconfig(path: Path, url: str, pki: Path, user: str) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": url, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(f"{user}.crt"),
                    "client-key-data": b64(f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))


@dataclass
class Process:
    """One component: how to start it, and the running process."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    tied: bool = True  # dies with the Python process that started it (not so for `up`)

    def start(self) -> None:
        """Start in its own process group, output to its log file."""
        with self.log.open("ab") as out:
            if not self.tied:
                self.popen = self._spawn(out)
                return
            # The death signal fires when the *thread* that forked the child ends, and callers
            # start components from short-lived worker threads (anyio retires idle ones after
            # 10 s): fork from one thread that lives as long as this process.
            self.popen = _SPAWNER.submit(self._spawn, out).result()

    def _spawn(self, out: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.tied else None,  # noqa: PLW1509 - only a prctl call
        )

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM its process group, wait for it, then SIGKILL whatever is left of the group."""
        if self.popen is None:
            return
        pid = self.popen.pid
        _signal_group(pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pid, signal.SIGKILL)
            self.popen.wait()
        _signal_group(pid, signal.SIGKILL)  # any child it left behind
        self.popen = None

    def tail(self, lines: int = 15) -> str:
        """The end of its log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="controlplane-spawner")


def _remove_abandoned_workdirs() -> None:
    """Remove temporary directories left by runs that were killed (SIGKILL leaves no time to clean).

    The components of such a run died with it; a directory whose owner process still runs (a
    concurrent test run) is left alone, and so is one without an owner file.
    """
    for workdir in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / OWNER_FILE).read_text())
        except (FileNotFoundError, ValueError):
            continue  # not (yet) claimed: maybe a run that is starting this moment
        if not _alive(owner):
            shutil.rmtree(workdir, ignore_errors=True)  # a concurrent sweep may remove it first


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _die_with_parent() -> None:
    """In the child: SIGKILL when the starting process dies, however it dies (Linux).

    A run killed before it can stop its control plane (SIGTERM, SIGKILL, a timeout) leaves no
    orphan etcd or kube-apiserver behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return


def _stop_group(pid: int, timeout: float) -> None:
    """Stop a process group that is not our child (started by `up` in another process)."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager and KWOK on loopback; a context manager."""

    workdir: Path | None = None
    binaries: Path | None = None
    quiet: bool = False
    apiserver_args: list[str] = field(default_factory=list)
    detached: bool = False  # `up`: the processes outlive this Python process
    processes: dict[str, Process] = field(default_factory=dict)
    url: str = ""  # the API server, https://127.0.0.1:<port>, once started
    etcd_url: str = ""  # etcd's client URL, for tests that talk to etcd directly
    _own_workdir: bool = False

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        """Certificates and keys."""
        assert self.workdir is not None
        return self.workdir / "pki"

    def _say(self, message: str) -> None:
        if not self.quiet:
            print(f"control plane: {message}", file=sys.stderr, flush=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything and wait until the API server is ready; raise ControlPlaneError if not."""
        started = time.monotonic()
        self.binaries = self.binaries or bin_dir()
        missing = missing_binaries(self.binaries)
        if missing:
            raise ControlPlaneError(
                f"not built yet: {', '.join(missing)} (in {self.binaries}); run `make controlplane`"
            )
        if shutil.which("openssl") is None:
            raise ControlPlaneError("openssl is needed to make the control plane's certificates")
        if self.workdir is None:
            _remove_abandoned_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            (self.workdir / OWNER_FILE).write_text(str(os.getpid()))
            self._own_workdir = True
        else:
            self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(started)
        except BaseException:
            self.stop()
            raise

    def _start(self, started: float) -> None:
        assert self.workdir is not None and self.binaries is not None
        _make_certs(self.pki)
        pki, b = self.pki, self.binaries
        etcd_port, peer_port, api_port, kwok_port = free_port(), free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{api_port}"
        etcd_url = self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.processes["etcd"] = Process(
            "etcd",
            [
                str(b / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
        )
        self.processes["kube-apiserver"] = Process(
            "kube-apiserver",
            [
                str(b / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--v=1",
                *self.apiserver_args,
            ],
            self.workdir / "kube-apiserver.log",
        )
        _kubeconfig(self.kubeconfig, self.url, pki, "admin")
        for user in ("controller-manager", "scheduler", "kwok"):
            _kubeconfig(self.workdir / f"{user}.kubeconfig", self.url, pki, user)
        self.processes["kube-controller-manager"] = Process(
            "kube-controller-manager",
            [
                str(b / "kube-controller-manager"),
                f"--kubeconfig={self.workdir / 'controller-manager.kubeconfig'}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--secure-port=0",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--concurrent-job-syncs=20",
                "--v=1",
            ],
            self.workdir / "kube-controller-manager.log",
        )
        self.processes["kwok"] = Process(
            "kwok",
            [
                str(b / "kwok"),
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={KWOK_STAGES}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={KWOK_LABEL[0]}={KWOK_LABEL[1]}",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-lease-duration-seconds=40",
            ],
            self.workdir / "kwok.log",
        )
        for process in self.processes.values():
            process.tied = not self.detached
        self._say(f"starting in {self.workdir}")
        self.start_etcd()
        self.start_apiserver()
        for name in ("kube-controller-manager", "kwok"):
            self.processes[name].start()
        self._say(f"ready at {self.url} in {time.monotonic() - started:.1f}s (kubeconfig {self.kubeconfig})")

    def start_etcd(self) -> None:
        """Start etcd (again) and wait for its health endpoint."""
        process = self.processes["etcd"]
        process.start()
        self._wait(process, f"{self.etcd_url}/health", secure=False)

    def start_apiserver(self) -> None:
        """Start kube-apiserver (again) and wait for /readyz."""
        process = self.processes["kube-apiserver"]
        process.start()
        self._wait(process, f"{self.url}/readyz", secure=True)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (the rest keeps running)."""
        self.processes["kube-apiserver"].stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port; returns once it is ready."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop_etcd(self) -> None:
        """Stop etcd only: the API server stays up but cannot read or write until `start_etcd`."""
        self.processes["etcd"].stop()

    def _wait(self, process: Process, url: str, *, secure: bool, timeout: float = 90.0) -> None:
        context = None
        if secure:
            context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not process.alive():
                raise ControlPlaneError(f"{process.name} exited at start:\n{process.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.1)
        raise ControlPlaneError(f"{process.name} not ready after {timeout:.0f}s ({last}):\n{process.tail()}")

    def stop(self) -> None:
        """Stop every process (KWOK and the controller manager first) and remove the directory."""
        for name in ("kwok", "kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.get(name)
            if process is not None:
                process.stop()
        if self._own_workdir and self.workdir is not None and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=False)

    def pids(self) -> dict[str, int]:
        """Process ids of the running components."""
        return {n: p.popen.pid for n, p in self.processes.items() if p.popen is not None}


def _ours(pid: int, name: str) -> bool:
    """Whether `pid` still runs the component `name` (a pid in an old state file may be reused)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except FileNotFoundError:
        return False  # gone
    return Path(os.fsdecode(argv0)).name == name


def _running_components(state: Path) -> dict[str, int]:
    """The components that `up` started and that still run, by name."""
    pids = json.loads(state.read_text())["pids"]
    return {name: int(pid) for name, pid in pids.items() if _ours(int(pid), name)}


def _up(args: argparse.Namespace) -> int:
    state = CLUSTER_DIR / "state.json"
    if state.exists():
        if _running_components(state):
            print(
                f"a control plane is already up (see {state}); run `make cluster-down` first", file=sys.stderr
            )
            return 1
        print(
            "control plane: the one started before is gone (machine restarted?); starting anew",
            file=sys.stderr,
        )
    if CLUSTER_DIR.exists():
        shutil.rmtree(CLUSTER_DIR)
    plane = ControlPlane(workdir=CLUSTER_DIR, detached=True)
    try:
        plane.start()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"(logs kept in {CLUSTER_DIR})", file=sys.stderr)
        return 1
    state.write_text(json.dumps({"pids": plane.pids(), "url": plane.url}))
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(
        f"# KWOK plays the kubelet of nodes labelled {KWOK_LABEL[0]}={KWOK_LABEL[1]}; "
        f"logs in {CLUSTER_DIR}; `make cluster-down` stops it",
        file=sys.stderr,
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    state = CLUSTER_DIR / "state.json"
    if not state.exists():
        print("no control plane is up", file=sys.stderr)
        return 0
    running = _running_components(state)
    for name in ("kwok", "kube-controller-manager", "kube-apiserver", "etcd"):
        if name in running:
            _stop_group(running[name], 10.0)
    shutil.rmtree(CLUSTER_DIR)
    print("control plane stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`up` or `down`."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.controlplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start a control plane in .cluster/ and print the KUBECONFIG line")
    sub.add_parser("down", help="stop the control plane started by `up`")
    args = parser.parse_args(argv)
    return int(_up(args) if args.command == "up" else _down(args))


if __name__ == "__main__":
    sys.exit(main())
