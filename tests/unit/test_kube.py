"""The adapter: its HTTP settings, what each answer means, the fence on writes, the server's clock.

The real API server's answers are in the end-to-end tests; here, the bodies it gives, and a local
HTTP server for moments hard to choose on a real one (a fence that closes as the bytes leave).
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import orjson
import pytest
from aiohttp import web
from kubernetes_asyncio import client

from custom_scheduler import convert
from custom_scheduler.kube import (
    MESSAGE_LIMIT,
    ApiError,
    Kube,
    NotLeading,
    Outcome,
    env_proxy,
    outcome_of,
    retryable,
    ssl_context,
)


def test_the_environment_names_the_proxy_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://10.0.0.1:6443") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert env_proxy("https://10.0.0.1:6443") == "http://proxy.example:3128"
    assert env_proxy("http://10.0.0.1:8080") is None  # only HTTPS_PROXY is set
    monkeypatch.setenv("NO_PROXY", "10.0.0.1,.cluster.local")
    assert env_proxy("https://10.0.0.1:6443") is None
    assert env_proxy("https://kubernetes.default.svc.cluster.local") is None
    assert env_proxy("https://10.0.0.2:6443") == "http://proxy.example:3128"


def test_tls_follows_the_configuration() -> None:
    configuration = client.Configuration()
    assert ssl_context(configuration).verify_mode is ssl.CERT_REQUIRED
    configuration.verify_ssl = False  # insecure-skip-tls-verify
    insecure = ssl_context(configuration)
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)


# Answers as the API server (v1.36) gives them, recorded on the local control plane.
def _status(message: str, reason: str, code: int, **details: object) -> bytes:
    body = {"kind": "Status", "status": "Failure", "message": message, "reason": reason, "code": code}
    return orjson.dumps({**body, "details": details} if details else body)


_NOT_FOUND_POD = _status('pods "nope" not found', "NotFound", 404, name="nope", kind="pods")
_NO_SUCH_KIND = _status("the server could not find the requested resource", "NotFound", 404)
_RBAC = _status(
    'events is forbidden: User "system:serviceaccount:p:nobody" cannot create resource "events" '
    'in API group "" in the namespace "p"',
    "Forbidden",
    403,
    kind="events",
)
_QUOTA = _status('pods "a" is forbidden: exceeded quota: q', "Forbidden", 403)
_TERMINATING = _status(
    "unable to create new content in namespace x because it is being terminated",
    "Forbidden",
    403,
    causes=[{"reason": "NamespaceTerminating"}],
)
_POLICY = _status(
    "pods \"refused\" is forbidden: ValidatingAdmissionPolicy 'no-bind' denied request", "Invalid", 422
)
_TWO_BUDGETS = _status(
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
    "",
    500,
)


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (201, b"{}", Outcome.OK),
        (404, _NOT_FOUND_POD, Outcome.NOT_FOUND),
        (404, _NO_SUCH_KIND, None),  # a kind the server does not serve: the scheduler's problem
        (404, b"404 page not found\n", None),
        (401, b"Unauthorized", None),
        (403, _RBAC, None),  # RBAC refuses one of our own verbs
        (403, _QUOTA, Outcome.REFUSED),  # admission: that object's problem
        (403, _TERMINATING, Outcome.NOT_FOUND),
        (409, b"{}", Outcome.CONFLICT),
        (422, _POLICY, Outcome.REFUSED),
        (400, b'{"message":"admission webhook \\"x\\" denied the request"}', Outcome.REFUSED),
        (429, b"{}", Outcome.TOO_MANY),
        (500, _TWO_BUDGETS, Outcome.FAILED),
        (503, b"", Outcome.FAILED),
        (415, b"", None),
    ],
)
def test_what_each_answer_to_a_write_means(status: int, body: bytes, outcome: Outcome | None) -> None:
    assert outcome_of(status, body) is outcome


def test_which_failed_reads_are_retried() -> None:
    assert retryable(ApiError("GET", "/x", 503, ""))
    assert retryable(ApiError("GET", "/x", 429, ""))
    assert not retryable(ApiError("GET", "/x", 403, ""))
    assert retryable(TimeoutError())
    assert not retryable(KeyError("bug"))


def test_an_error_carries_the_servers_message_cut_short() -> None:
    error = ApiError("POST", "/p", 422, '{"message": "' + "x" * 5000 + '"}')
    assert len(error.body) == MESSAGE_LIMIT and error.body.startswith("xxx")
    assert len(str(error)) < 400


@asynccontextmanager
async def server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[Kube]:
    """A local HTTP server answering with `handler`, and a Kube that talks to it."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as session:
            yield Kube(configuration, session)
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_write_is_fenced_in_the_step_that_sends_it() -> None:
    received: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.json_response({}, status=201)

    async with server(handler) as kube:
        body = convert.binding_body("ns", "a", "n1")
        kube.fence = lambda: True
        assert (await kube.bind("ns", "a", "n1", body)).ok
        # Valid when the request is made, no longer when its bytes would leave (the process
        # froze in between): nothing is sent.
        answers = iter([True, False])
        kube.fence = lambda: next(answers, False)
        with pytest.raises(NotLeading):
            await kube.bind("ns", "b", "n1", body)
        kube.fence = lambda: False
        with pytest.raises(NotLeading):
            await kube.bind("ns", "c", "n1", body)
    assert received == ["/api/v1/namespaces/ns/pods/a/binding"]


@pytest.mark.asyncio
async def test_server_time_follows_the_date_header_not_our_clock() -> None:
    server_clock = 1_800_000_000.0

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Date": email.utils.formatdate(server_clock, usegmt=True)})

    async with server(handler) as kube:
        kube.wall = lambda: server_clock + 150.0  # our clock is 150 s ahead
        assert kube.server_time() == server_clock + 150.0  # nothing measured yet
        await kube.create_event("ns", {})
        assert abs(kube.server_time() - server_clock) <= 1.0
