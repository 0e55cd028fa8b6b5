"""The API adapter: the one module that speaks HTTP to the API server, and that decides what its answers mean.

kubernetes_asyncio reads the configuration (kubeconfig or in-cluster, token refresh); requests
go around its generated client, on one aiohttp session: bodies are written and read with orjson
(30x faster and 10x smaller than `V1Pod`, see DESIGN.md), and a watch's stream is split into
lines here, since aiohttp's line reader refuses lines over 64 KiB.

What each answer means is decided here and nowhere else (DESIGN.md, "Errors have one home"):

- A write returns an `Answer`: OK, or a refusal that is that object's problem (404 gone, 409
  conflict, 429 a disruption budget or the server's flow control, an admission webhook or policy
  saying no, a 5xx or no answer at all). The caller logs it, shows it on the pod where it can,
  and tries again later; the scheduler goes on for every other object.
- `ApiError` is raised only for what concerns the scheduler itself and will not pass by itself:
  401 (credentials), 403 on its own verbs (RBAC), a 404 for a kind of resource the server does
  not serve, a request the server cannot understand. It ends the process, so that Kubernetes
  restarts it and people see one clear line. Reads and Lease calls raise it for every failure;
  `retryable` says which of those pass by themselves.
- `NotLeading` is raised, before anything is sent, by a write this replica may no longer make:
  its lease is not known valid (`Kube.fence`).
"""

from __future__ import annotations

import email.utils
import enum
import errno
import os
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import aiohttp.abc
import orjson
from kubernetes_asyncio import client, config

from custom_scheduler.convert import cut

# (connect, read) seconds for ordinary requests; a watch's read timeout follows its own length.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(sock_connect=10.0, sock_read=60.0)
LIST_PAGE = 500  # a page of 500 pods is some 10 MB of dicts while it is converted
# A watch is asked to end after this many seconds, and is given this much longer to say anything
# at all (the server also sends a bookmark shortly before it ends one): a stream that stays
# silent longer is dead, though its connection looks open, and is given up within a minute.
WATCH_SECONDS = 50
WATCH_SLACK = 10
MESSAGE_LIMIT = 1024  # characters of the API server's message kept in an answer or an error

Query = list[tuple[str, str]]
_TRANSPORT = (aiohttp.ClientError, TimeoutError, ConnectionError)


class Outcome(enum.Enum):
    """How a write ended. Anything but OK is that object's problem, not the scheduler's."""

    OK = "ok"
    NOT_FOUND = "not_found"  # the object is gone, or its namespace is going
    CONFLICT = "conflict"  # already bound, or changed under us
    TOO_MANY = "too_many_requests"  # 429: a PodDisruptionBudget said no, or the server asks to slow down
    REFUSED = (
        "refused"  # admission or validation said no (a webhook, a policy, a quota): will not pass by itself
    )
    FAILED = "failed"  # the server failed or did not answer (5xx, a timeout, a broken connection)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API server said to a write: the outcome, its HTTP status (0: none) and its message."""

    outcome: Outcome
    status: int = 200
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the write was done."""
        return self.outcome is Outcome.OK


OK = Answer(Outcome.OK)


class ApiError(Exception):
    """A failed read or Lease call, or a write refused for a reason that concerns the scheduler itself."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status = method, path, status
        self.body = _message(body.encode())
        super().__init__(f"{method} {path} answered {status}: {cut(self.body, 300)}")


class NotLeading(Exception):
    """A write was about to be sent without a lease known valid: this replica must stop writing."""


class KubeconfigError(Exception):
    """No usable cluster configuration: the message says which file or setting and why."""


class Unreachable(ConnectionError):
    """No connection to the API server could be made; the message names its address and why, on one line."""


# What a failed connection's errno means, in the words people know from `curl` and `kubectl`.
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network is unreachable",
    errno.ECONNRESET: "connection reset",
}


def unreachable(host: str, error: BaseException) -> Unreachable:
    """An `Unreachable` for a failed connection to `host`: `cannot reach https://...: connection refused`."""
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        why = f"its certificate was refused: {error.certificate_error}"
    elif isinstance(error, aiohttp.ClientConnectorDNSError):
        why = f"no such host ({error.os_error})"
    elif isinstance(error, aiohttp.ClientConnectorError):
        code = error.os_error.errno
        known = _CONNECT_ERRORS.get(code) if code is not None else None
        why = known or (os.strerror(code) if code else str(error.os_error)).lower() or type(error).__name__
    elif isinstance(error, TimeoutError):  # aiohttp's connect timeout
        why = f"no connection within {REQUEST_TIMEOUT.sock_connect:g}s"
    else:
        why = str(error) or type(error).__name__
    return Unreachable(f"cannot reach {host}: {' '.join(why.split())}")


class Expired(Exception):
    """A watch's resourceVersion is too old (410 Gone): relist."""


def retryable(error: BaseException) -> bool:
    """Whether a failed read or Lease call passes by itself (try again) rather than ending the process.

    The server away or overloaded (5xx, 429, no answer) passes; 401, 403 and the rest do not.
    """
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, _TRANSPORT)


# How the authorizer words a refusal of one of our own verbs (RBAC): k8s.io/apiserver's
# responsewriters.forbiddenMessage. Admission (a webhook, a policy, a quota) also answers 403,
# about one object; only this one is about the scheduler.
_AUTHORIZATION = re.compile(r'User "[^"]*" cannot ')


def _status(data: bytes) -> dict[str, Any]:
    """The `Status` object of an error answer ({} when the body is not one)."""
    try:
        parsed = orjson.loads(data) if data[:1] == b"{" else None
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _message(data: bytes) -> str:
    """The API server's message in an error answer (its Status message, else the text), cut short."""
    message = _status(data).get("message")
    text = message if isinstance(message, str) else data.decode(errors="replace")
    return cut(" ".join(text.split()), MESSAGE_LIMIT)


def outcome_of(status: int, data: bytes) -> Outcome | None:
    """What an answer to a write means; None when it concerns the scheduler itself (it must end)."""
    if 200 <= status < 300:
        return Outcome.OK
    body = _status(data)
    if status == 404:
        # A missing object comes as a Status NotFound that names it; a kind of resource the server
        # does not serve, as plain "404 page not found" or a NotFound that names nothing.
        details = body.get("details")
        named = isinstance(details, dict) and bool(details.get("name"))
        return Outcome.NOT_FOUND if body.get("reason") == "NotFound" and named else None
    if status == 403:
        if b"NamespaceTerminating" in data:
            return Outcome.NOT_FOUND  # its namespace is being deleted: the object is going too
        message = body.get("message")
        if _AUTHORIZATION.search(message if isinstance(message, str) else data.decode(errors="replace")):
            return None
        return Outcome.REFUSED
    if status in (401, 405, 406, 415):
        return None  # our credentials, or a request this server cannot take from anyone
    if status == 409:
        return Outcome.CONFLICT
    if status == 429:
        return Outcome.TOO_MANY
    if 400 <= status < 500:
        return Outcome.REFUSED
    if status >= 500:
        return Outcome.FAILED
    return None


class _Fenced(aiohttp.BytesPayload):
    """A request body handed to the socket only while `fence()` says True, checked at that very step.

    aiohttp writes a request (its buffered headers with its body) from a task of its own, in a
    later turn of the event loop than the call that made it: a process frozen in between (SIGSTOP,
    a paused VM) would send it on waking, however long after. Here the check and the socket write
    happen in one step, with nothing that can wait in between. Refused, nothing at all is sent.
    """

    def __init__(self, value: bytes, fence: Callable[[], bool], content_type: str) -> None:
        super().__init__(value, content_type=content_type)
        self._fence = fence

    def _check(self) -> None:
        if not self._fence():
            raise NotLeading("a write was not sent: this replica's lease is not known valid")

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        self._check()
        await super().write(writer)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        self._check()
        await super().write_with_length(writer, content_length)


class Page(NamedTuple):
    """One page of a list: its items; the resourceVersion to watch from (on the last page only, else "");
    `restart`: the pages before this one are void (the list was taken again whole)."""

    items: list[dict[str, Any]]
    version: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    """A listable, watchable collection: its path and the query that narrows it."""

    name: str
    path: str
    field_selector: str = ""


def kinds(*, scheduler_name: str, namespace: str | None) -> tuple[Kind, Kind, Kind, Kind]:
    """Nodes, our pods (all namespaces or one), the bound and unfinished pods of other schedulers
    (what they request is not there for ours: SPEC 2), and priority classes."""
    pods = f"/api/v1/namespaces/{quote(namespace)}/pods" if namespace else "/api/v1/pods"
    others = (
        f"spec.schedulerName!={scheduler_name},spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
    )
    return (
        Kind("nodes", "/api/v1/nodes"),
        Kind("pods", pods, f"spec.schedulerName={scheduler_name}"),
        Kind("others", "/api/v1/pods", others),
        Kind("priorityclasses", "/apis/scheduling.k8s.io/v1/priorityclasses"),
    )


def _pod_path(namespace: str, name: str, sub: str = "") -> str:
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"
    return f"{path}/{sub}" if sub else path


def kubeconfig_path(explicit: str | None) -> str:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config."""
    path = (explicit or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")).split(
        os.pathsep
    )[0]
    if not os.path.exists(path):
        raise KubeconfigError(f"kubeconfig {path} does not exist (use --kubeconfig or $KUBECONFIG)")
    return path


async def load_configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    """The cluster's address and credentials: --kubeconfig; else in-cluster in a pod; else $KUBECONFIG;
    else ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as error:
            raise KubeconfigError(f"cannot use the in-cluster configuration: {error}") from None
        return configuration
    path = kubeconfig_path(kubeconfig)
    _check_kubeconfig(path)
    try:
        await config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration, persist_config=False
        )
    except config.ConfigException as error:
        raise KubeconfigError(f"kubeconfig {path}: {' '.join(str(error).split())}") from None
    # The client reads what it finds and trips over a value of the wrong type (a list for a map, a
    # number for a name) with a TypeError or its kin: the file is wrong, not the scheduler.
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as error:
        raise KubeconfigError(f"kubeconfig {path}: cannot be used: {type(error).__name__}: {error}") from None
    return configuration


def _check_kubeconfig(path: str) -> None:
    """Raise KubeconfigError, naming the file, unless it can be read and is a YAML mapping."""
    import yaml

    try:
        with open(path, "rb") as f:
            document = yaml.safe_load(f)
    except OSError as error:
        raise KubeconfigError(f"kubeconfig {path}: cannot read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML: {problem}{where}") from None
    if not isinstance(document, dict):
        got = {type(None): "nothing", str: "text", list: "a list"}.get(type(document), "a single value")
        raise KubeconfigError(f"kubeconfig {path}: expected a Config (a mapping), got {got}")


def ssl_context(configuration: client.Configuration) -> ssl.SSLContext:
    """The TLS settings a configuration names, as kubernetes_asyncio's own REST client applies them."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def env_proxy(url: str) -> str | None:
    """The proxy $HTTPS_PROXY (or $HTTP_PROXY) names for `url`, unless $NO_PROXY exempts its host."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.hostname and urllib.request.proxy_bypass(parsed.hostname):
        return None
    return urllib.request.getproxies().get(parsed.scheme)


@asynccontextmanager
async def connect(
    kubeconfig: str | None, context: str | None, *, connections: int = 100
) -> AsyncIterator[Kube]:
    """A `Kube` for the chosen cluster, closed on exit; `connections` bounds requests in flight."""
    configuration = await load_configuration(kubeconfig, context)
    try:
        tls = ssl_context(configuration)
    except (OSError, ssl.SSLError) as error:  # a certificate or key file missing or not PEM
        raise KubeconfigError(f"cannot use the cluster's TLS settings: {error}") from None
    # The generated client's session trusts the environment, and so reads the proxy variables and
    # ~/.netrc in a worker thread on every request: as much CPU as the rest of the request
    # (BENCHMARKS.md). The proxy is read here once instead (a kubeconfig's proxy-url wins); ~/.netrc
    # has no part in Kubernetes' authentication.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=tls),
        read_bufsize=2**21,  # a watch event may carry an object up to etcd's 1.5 MiB
    )
    try:
        yield Kube(configuration, session)
    finally:
        await session.close()


class Kube:
    """Lists, watches and writes of the scheduler, on one HTTP session.

    `fence`, when set, is asked just before each write is sent and must say True (this replica's
    lease is known valid), else the write is not sent and `NotLeading` is raised. `wall` is the
    local clock that `server_time` corrects with the API server's Date headers.
    """

    def __init__(
        self,
        configuration: client.Configuration,
        session: aiohttp.ClientSession,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.configuration = configuration
        self.session = session
        self.host = str(configuration.host).rstrip("/")
        self.proxy = configuration.proxy or env_proxy(self.host)
        self.server_hostname = configuration.tls_server_name or None
        self.fence: Callable[[], bool] | None = None
        self.page_size = LIST_PAGE
        self.wall = wall
        self._skew: float | None = None  # the server's clock less ours, as last measured
        self._date = ("", 0.0)  # the last Date header read, and its value

    # -- the server's clock -----------------------------------------------------------------

    def server_time(self) -> float:
        """Now on the API server's clock (epoch seconds), as its Date headers tell; our own until one has."""
        return self.wall() + (self._skew or 0.0)

    def _observe_date(self, header: str | None, sent: float, received: float) -> None:
        # Timestamps the scheduler compares with ours (a victim's deletionTimestamp) are the
        # server's: measure how far our clock is from it. Date has whole seconds, so the server's
        # time was within [Date, Date + 1) at some moment of the request: take the middles.
        if not header or received - sent > 2.0:  # a slow answer says little about when it was stamped
            return
        if header != self._date[0]:
            parsed = email.utils.parsedate_tz(header)
            if parsed is None:
                return
            self._date = (header, float(email.utils.mktime_tz(parsed)))
        self._skew = self._date[1] + 0.5 - (sent + received) / 2

    # -- requests ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: object = None,
        content_type: str = "application/json",
        request_timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
        fenced: bool = False,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # Asked each time: the configuration's hook refreshes an expiring token (exec plugins, a
        # projected service-account token) before it answers.
        token = await self.configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        encoded = None if body is None else orjson.dumps(body)
        data: bytes | _Fenced | None = encoded
        # A replica that stalled (a long pause, a frozen VM, SIGSTOP) and woke after another took
        # its lease must not write: asked now, and again as the bytes go to the socket.
        if fenced and self.fence is not None:
            if not self.fence():
                raise NotLeading(f"{method} {path} not sent: this replica's lease is not known valid")
            if encoded is not None:
                data = _Fenced(encoded, self.fence, content_type)
        sent = self.wall()
        try:
            response = await self.session.request(
                method,
                self.host + path,
                params=query or None,
                data=data,
                headers=headers,
                timeout=request_timeout,
                proxy=self.proxy,
                proxy_headers=self.configuration.proxy_headers,
                server_hostname=self.server_hostname,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            # Said in one line that names the server (still a transport error: retried where reads are).
            raise unreachable(self.host, error) from error
        self._observe_date(response.headers.get("Date"), sent, self.wall())
        return response

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._request(method, path, **kw)
        async with response:
            data = await response.read()
            if response.status >= 300:
                raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return orjson.loads(data)

    async def _write(
        self, method: str, path: str, body: object, content_type: str = "application/json"
    ) -> Answer:
        try:
            response = await self._request(method, path, body=body, content_type=content_type, fenced=True)
            async with response:
                data = await response.read()
        except _TRANSPORT as error:
            if self.fence is not None and not self.fence():
                # The body's own check refused it (aiohttp reports that as a broken connection).
                raise NotLeading(
                    f"{method} {path} not sent: this replica's lease is not known valid"
                ) from error
            return Answer(Outcome.FAILED, 0, cut(f"{type(error).__name__}: {error}", MESSAGE_LIMIT))
        outcome = outcome_of(response.status, data)
        if outcome is None:
            raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return OK if outcome is Outcome.OK else Answer(outcome, response.status, _message(data))

    # -- reads ------------------------------------------------------------------------------

    async def pages(self, kind: Kind) -> AsyncIterator[Page]:
        """A list of all items of a kind, a page at a time; the last page carries the resourceVersion
        to watch from. Whoever keeps slim copies of each page holds no more than one page of raw objects.

        If the continue token expires before the last page (410: etcd compacted past the list's
        revision), the list is taken again whole in one request, as client-go's pager does; that
        page comes with `restart`, and the pages before it are void.
        """
        token = ""
        selector = [("fieldSelector", kind.field_selector)] if kind.field_selector else []
        while True:
            query = [("limit", str(self.page_size)), *selector]
            if token:
                query.append(("continue", token))
            try:
                page = await self._json("GET", kind.path, query=query)
            except ApiError as error:
                if error.status != 410 or not token:
                    raise
                whole = await self._json("GET", kind.path, query=selector)
                version = str((whole.get("metadata") or {}).get("resourceVersion") or "")
                yield Page(whole.get("items") or [], version, restart=True)
                return
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            yield Page(page.get("items") or [], "" if token else str(metadata.get("resourceVersion") or ""))
            if not token:
                return

    async def list(self, kind: Kind) -> tuple[list[dict[str, Any]], str]:
        """All items of a kind and the resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        version = ""
        async for page in self.pages(kind):
            if page.restart:
                items.clear()
            items.extend(page.items)
            version = page.version
        return items, version

    async def watch(
        self, kind: Kind, resource_version: str, *, seconds: int = WATCH_SECONDS
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events from `resource_version` for about `seconds`; bookmarks included.

        Raises `Expired` on 410, `ApiError` on other errors; ends when the server ends the watch.
        A stream silent for `seconds + WATCH_SLACK` raises a timeout (the connection is dead).
        """
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        if kind.field_selector:
            query.append(("fieldSelector", kind.field_selector))
        timeout = aiohttp.ClientTimeout(
            sock_connect=REQUEST_TIMEOUT.sock_connect, sock_read=seconds + WATCH_SLACK
        )
        response = await self._request("GET", kind.path, query=query, request_timeout=timeout)
        async with response:
            if response.status == 410:
                raise Expired(kind.name)
            if response.status >= 300:
                body = (await response.read()).decode(errors="replace")
                raise ApiError("GET", kind.path, response.status, body)
            partial: list[bytes] = []  # the start of a line that has not ended yet
            async for chunk in response.content.iter_any():
                if b"\n" not in chunk:
                    partial.append(chunk)
                    continue
                lines = chunk.split(b"\n")
                lines[0] = b"".join([*partial, lines[0]])
                last = lines.pop()
                partial = [last] if last else []
                for line in lines:
                    if line.strip():
                        yield _event(kind, orjson.loads(line))

    # -- writes (fenced) --------------------------------------------------------------------

    async def bind(self, namespace: str, name: str, node: str, body: dict[str, Any]) -> Answer:
        """POST pods/binding (the answer is a Status, which is why it is read raw)."""
        return await self._write("POST", _pod_path(namespace, name, "binding"), body)

    async def evict(self, namespace: str, name: str, body: dict[str, Any]) -> Answer:
        """POST pods/eviction (policy/v1): 429 when a PodDisruptionBudget says no."""
        return await self._write("POST", _pod_path(namespace, name, "eviction"), body)

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Answer:
        """Strategic-merge PATCH of pods/status (conditions merge by type)."""
        return await self._write(
            "PATCH", _pod_path(namespace, name, "status"), patch, "application/strategic-merge-patch+json"
        )

    async def create_event(self, namespace: str, body: dict[str, Any]) -> Answer:
        """POST a core/v1 Event."""
        return await self._write("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body)

    # -- the Lease (not fenced: it is what the fence is made of) ----------------------------

    @staticmethod
    def _lease_path(namespace: str, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
        return f"{path}/{quote(name)}" if name else path

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when there is none; `ApiError` on any other failure."""
        path = self._lease_path(namespace, name)
        response = await self._request("GET", path)
        async with response:
            data = await response.read()
        if response.status == 404 and outcome_of(404, data) is Outcome.NOT_FOUND:
            return None
        if response.status != 200:
            raise ApiError("GET", path, response.status, data.decode(errors="replace"))
        lease: dict[str, Any] = orjson.loads(data)
        return lease

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Lease; False when another replica created it first (409)."""
        return await self._lease_write("POST", self._lease_path(namespace), body)

    async def update_lease(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """Replace the Lease (its resourceVersion is the precondition); False if it changed under us (409)."""
        return await self._lease_write("PUT", self._lease_path(namespace, name), body)

    async def _lease_write(self, method: str, path: str, body: dict[str, Any]) -> bool:
        response = await self._request(method, path, body=body)
        async with response:
            data = await response.read()
        if response.status == 409:
            return False
        if response.status >= 300:
            raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return True

    # -- for tools and tests ----------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        query: Query | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """Any request: (status, parsed JSON body or None). For tools and tests; never raises on status."""
        response = await self._request(method, path, query=query, body=body, content_type=content_type)
        async with response:
            data = await response.read()
        return response.status, orjson.loads(data) if data else None


def _event(kind: Kind, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind_of_event = str(event.get("type") or "")
    obj = event.get("object") or {}
    if kind_of_event == "ERROR":
        if obj.get("code") == 410:
            raise Expired(kind.name)
        raise ApiError("WATCH", kind.path, int(obj.get("code") or 0), str(obj.get("message") or obj))
    return kind_of_event, obj
