"""The adapter's own HTTP settings: the proxy read once from the environment, TLS as configured."""

from __future__ import annotations

import ssl

import pytest
from kubernetes_asyncio import client

from custom_scheduler.kube import env_proxy, ssl_context


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
