"""The API adapter: the one module that speaks HTTP to the API server.

kubernetes_asyncio reads the configuration (kubeconfig or in-cluster, token refresh); requests
go around its generated client, on one aiohttp session: bodies are written and read with orjson
(30x faster and 10x smaller than `V1Pod`, see DESIGN.md), and a watch's stream is split into
lines here, since aiohttp's line reader refuses lines over 64 KiB. Expected answers of writes
(404 gone, 409 conflict, 429 refused by a disruption budget) come back as an `Outcome`; any
other failure raises `ApiError`, which ends the process so that Kubernetes restarts it clean.
"""

from __future__ import annotations

import enum
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from kubernetes_asyncio import client, config

# (connect, read) seconds for ordinary requests; a watch's read timeout follows its own length.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(sock_connect=10.0, sock_read=60.0)
LIST_PAGE = 500  # a page of 500 pods is some 10 MB of dicts while it is converted

Query = list[tuple[str, str]]


class Outcome(enum.Enum):
    """How a write ended, when it ended in a way the scheduler expects."""

    OK = "ok"
    NOT_FOUND = "not_found"  # the pod is gone
    CONFLICT = "conflict"  # already bound, or changed under us
    TOO_MANY = "too_many_requests"  # an eviction refused by a PodDisruptionBudget


_OUTCOMES = {404: Outcome.NOT_FOUND, 409: Outcome.CONFLICT, 429: Outcome.TOO_MANY}


class ApiError(Exception):
    """An answer the scheduler does not expect: it ends the process with this message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")


class KubeconfigError(Exception):
    """No usable cluster configuration: the message says which file or setting and why."""


class Expired(Exception):
    """A watch's resourceVersion is too old (410 Gone): relist."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A listable, watchable collection: its path and the query that narrows it."""

    name: str
    path: str
    field_selector: str = ""


def kinds(*, scheduler_name: str, namespace: str | None) -> tuple[Kind, Kind, Kind]:
    """Nodes, our pods (all namespaces or one), and priority classes."""
    pods = f"/api/v1/namespaces/{quote(namespace)}/pods" if namespace else "/api/v1/pods"
    return (
        Kind("nodes", "/api/v1/nodes"),
        Kind("pods", pods, f"spec.schedulerName={scheduler_name}"),
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
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=kubeconfig_path(kubeconfig),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except config.ConfigException as error:
        raise KubeconfigError(f"cannot use the cluster configuration: {error}") from None
    return configuration


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
    # The generated client's session trusts the environment, and so reads the proxy variables and
    # ~/.netrc in a worker thread on every request: as much CPU as the rest of the request
    # (BENCHMARKS.md). The proxy is read here once instead (a kubeconfig's proxy-url wins); ~/.netrc
    # has no part in Kubernetes' authentication.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=ssl_context(configuration)),
        read_bufsize=2**21,  # a watch event may carry an object up to etcd's 1.5 MiB
    )
    try:
        yield Kube(configuration, session)
    finally:
        await session.close()


class Kube:
    """Lists, watches and writes of the scheduler, on one HTTP session."""

    def __init__(self, configuration: client.Configuration, session: aiohttp.ClientSession) -> None:
        self.configuration = configuration
        self.session = session
        self.host = str(configuration.host).rstrip("/")
        self.proxy = configuration.proxy or env_proxy(self.host)
        self.server_hostname = configuration.tls_server_name or None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: object = None,
        content_type: str = "application/json",
        request_timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # Asked each time: the configuration's hook refreshes an expiring token (exec plugins, a
        # projected service-account token) before it answers.
        token = await self.configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        return await self.session.request(
            method,
            self.host + path,
            params=query or None,
            data=None if body is None else orjson.dumps(body),
            headers=headers,
            timeout=request_timeout,
            proxy=self.proxy,
            proxy_headers=self.configuration.proxy_headers,
            server_hostname=self.server_hostname,
        )

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._request(method, path, **kw)
        async with response:
            data = await response.read()
            if response.status >= 300:
                raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return orjson.loads(data)

    async def _write(
        self, method: str, path: str, body: object, content_type: str = "application/json"
    ) -> Outcome:
        response = await self._request(method, path, body=body, content_type=content_type)
        async with response:
            data = await response.read()
        if response.status < 300:
            return Outcome.OK
        if response.status == 403 and b"NamespaceTerminating" in data:
            return Outcome.NOT_FOUND  # its namespace is being deleted: the pod is going too
        outcome = _OUTCOMES.get(response.status)
        if outcome is None:
            raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return outcome

    # -- reads ------------------------------------------------------------------------------

    async def pages(self, kind: Kind) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """A list of all items of a kind, a page at a time: (items, "") and last (items, the
        resourceVersion to watch from). Whoever keeps slim copies of each page holds no more than
        one page of raw objects."""
        token = ""
        while True:
            query = [("limit", str(LIST_PAGE))]
            if kind.field_selector:
                query.append(("fieldSelector", kind.field_selector))
            if token:
                query.append(("continue", token))
            page = await self._json("GET", kind.path, query=query)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            yield page.get("items") or [], "" if token else str(metadata.get("resourceVersion") or "")
            if not token:
                return

    async def list(self, kind: Kind) -> tuple[list[dict[str, Any]], str]:
        """All items of a kind and the resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        version = ""
        async for page, last in self.pages(kind):
            items.extend(page)
            version = last
        return items, version

    async def watch(
        self, kind: Kind, resource_version: str, *, seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events from `resource_version` for about `seconds`; bookmarks included.

        Raises `Expired` on 410, `ApiError` on other errors; ends when the server ends the watch.
        """
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        if kind.field_selector:
            query.append(("fieldSelector", kind.field_selector))
        timeout = aiohttp.ClientTimeout(sock_connect=REQUEST_TIMEOUT.sock_connect, sock_read=seconds + 30)
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

    # -- writes -----------------------------------------------------------------------------

    async def bind(self, namespace: str, name: str, node: str, body: dict[str, Any]) -> Outcome:
        """POST pods/binding (the answer is a Status, which is why it is read raw)."""
        return await self._write("POST", _pod_path(namespace, name, "binding"), body)

    async def evict(self, namespace: str, name: str, body: dict[str, Any]) -> Outcome:
        """POST pods/eviction (policy/v1): 429 when a PodDisruptionBudget says no."""
        return await self._write("POST", _pod_path(namespace, name, "eviction"), body)

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Outcome:
        """Strategic-merge PATCH of pods/status (conditions merge by type)."""
        return await self._write(
            "PATCH", _pod_path(namespace, name, "status"), patch, "application/strategic-merge-patch+json"
        )

    async def create_event(self, namespace: str, body: dict[str, Any]) -> Outcome:
        """POST a core/v1 Event."""
        return await self._write("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body)

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
