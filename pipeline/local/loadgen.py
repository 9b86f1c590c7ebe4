"""A small, bounded load generator for the local target: steady requests through
the router, counted by the version that served them (`X-Served-Version`).

The demo uses it so that analysis has traffic to judge; the integration tests use
its counts to prove that traffic really moved, and that a hand-over failed no request:
every request sent is counted, an unreachable router as status 599; leaving the
generator waits for the requests still under way (bounded) rather than cutting them
off."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from pipeline.http import http_client

MAX_SECONDS = 1800  # a forgotten generator stops by itself
REQUEST_TIMEOUT_SECONDS = 5.0


@dataclass
class Served:
    at: float
    version: str
    status: int
    segment: str | None


@dataclass
class LoadGenerator:
    router_url: str
    service: str
    rate_per_second: float = 30.0
    segment_header: str = "X-User-Type"
    segment_every: int = 0
    """Send every Nth request as a beta photographer (0: never)."""
    log: list[Served] = field(default_factory=list)
    _task: asyncio.Task | None = None
    _pending: set[asyncio.Task] = field(default_factory=set)

    async def __aenter__(self) -> LoadGenerator:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def served_since(self, since: float, segment: bool | None = None) -> Counter[str]:
        """Responses per version since `since` (time.monotonic()), optionally only
        segment (True) or ordinary (False) requests."""
        return Counter(
            served.version
            for served in self.log
            if served.at >= since and (segment is None or (served.segment is not None) == segment)
        )

    def errors_since(self, since: float) -> Counter[str]:
        return Counter(served.version for served in self.log if served.at >= since and served.status >= 500)

    async def _run(self) -> None:
        interval = 1 / self.rate_per_second
        deadline = time.monotonic() + MAX_SECONDS
        headers = {"Host": f"{self.service}.localhost"}
        async with http_client(base_url=self.router_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            sent = 0
            try:
                while time.monotonic() < deadline:
                    sent += 1
                    segment = "beta-photographer" if self.segment_every and sent % self.segment_every == 0 else None
                    self._send(client, {**headers, **({self.segment_header: segment} if segment else {})}, segment)
                    await asyncio.sleep(interval)
            finally:
                if self._pending:
                    await asyncio.wait(self._pending, timeout=REQUEST_TIMEOUT_SECONDS)

    def _send(self, client: httpx.AsyncClient, headers: dict[str, str], segment: str | None) -> None:
        task = asyncio.create_task(self._one(client, headers, segment))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _one(self, client: httpx.AsyncClient, headers: dict[str, str], segment: str | None) -> None:
        try:
            response = await client.get("/api/photos", headers=headers)
        except httpx.HTTPError:
            self.log.append(Served(time.monotonic(), "unreachable", 599, segment))
            return
        self.log.append(Served(time.monotonic(), response.headers.get("X-Served-Version", "router"), response.status_code, segment))
