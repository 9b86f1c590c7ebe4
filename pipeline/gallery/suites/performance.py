"""50 sequential GETs of the gallery page; the p95 latency must stay under 500 ms."""

from __future__ import annotations

import time

import httpx

from ._harness import expect, expect_status, run

REQUESTS = 50
P95_LIMIT_MS = 500


def suite(client: httpx.Client) -> None:
    latencies_ms = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        expect_status(client.get("/"), 200)
        latencies_ms.append((time.perf_counter() - started) * 1000)
    p95 = sorted(latencies_ms)[int(0.95 * REQUESTS) - 1]
    expect(p95 < P95_LIMIT_MS, f"p95 latency {p95:.0f} ms is not under {P95_LIMIT_MS} ms")


if __name__ == "__main__":
    run(suite)
