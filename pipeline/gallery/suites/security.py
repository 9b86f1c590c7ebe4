"""No version leak in the Server header, no path traversal, no unexpected methods,
no internals in error bodies."""

from __future__ import annotations

import re

import httpx

from ._harness import expect, expect_status, run

LEAKS = re.compile(r"Traceback|File \"|Python/\d|Exception", re.IGNORECASE)


def suite(client: httpx.Client) -> None:
    server = client.get("/health/live").headers.get("Server", "")
    expect(not re.search(r"\d", server), f"Server header leaks a version: {server!r}")
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/api/../../etc/passwd"):
        expect_status(client.get(path), 404)
    expect_status(client.delete("/api/photos"), 405)
    expect_status(client.put("/api/photos", content=b"{}"), 405)
    malformed = client.post("/api/photos", content=b"{not json", headers={"Content-Type": "application/json"})
    expect_status(malformed, 400)
    for response in (malformed, client.get("/does-not-exist")):
        expect(not LEAKS.search(response.text), f"error body leaks internals: {response.text[:80]!r}")


if __name__ == "__main__":
    run(suite)
