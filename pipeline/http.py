"""The one way the worker and the local world make an HTTP client: with a TLS context
built once per process.

httpx builds a new context (reading the CA bundle) for each client, about 70 ms on this
machine; activities make a client per call, so that cost fell on every traffic change,
health read and kill switch. Certificates are still verified as by default."""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.AsyncClient:
    """An httpx.AsyncClient with `options`, sharing the process's TLS context."""
    return httpx.AsyncClient(verify=tls_context(), **options)
