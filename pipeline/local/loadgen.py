"""A small, bounded load generator for the local target: steady requests through
the router, counted by the version that served them (`X-Served-Version`).

The demo uses it so that analysis has traffic to judge; the integration tests use
its counts to prove that traffic really moved, and that a hand-over failed no request:
every request sent is counted, an unreachable router as status 599; leaving the
generator waits for the requests still under way (bounded) rather than cutting them
off.

Each request is sent as one of `users` stable user keys in turn (X-User-Id), and the
feature-flag variants that served it (X-Flag-Variant) are recorded, so the flag tests
count per variant through the router; `variants_of_users` asks once per user, as fast
as the router answers, for the fractional-rollout accuracy checks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from pipeline.gallery.flags import SEGMENT_HEADER, USER_HEADER, VARIANT_HEADER, parse_variant_header
from pipeline.http import http_client

MAX_SECONDS = 1800  # a forgotten generator stops by itself
REQUEST_TIMEOUT_SECONDS = 5.0
BETA = "beta-photographer"
PROBE_CONCURRENCY = 16


def user_key(index: int) -> str:
    return f"user-{index:05d}"


@dataclass
class Served:
    at: float
    version: str
    status: int
    segment: str | None
    user: str = ""
    variants: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadGenerator:
    router_url: str
    service: str
    rate_per_second: float = 30.0
    segment_header: str = SEGMENT_HEADER
    segment_every: int = 0
    """Every Nth user is a beta photographer (0: none)."""
    users: int = 1000
    """How many distinct user keys the requests cycle through."""
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

    def variants_since(self, since: float, flag: str) -> Counter[str]:
        """Responses per variant of `flag` since `since` (no variant: "none")."""
        return Counter(served.variants.get(flag, "none") for served in self.log if served.at >= since)

    async def _run(self) -> None:
        interval = 1 / self.rate_per_second
        deadline = time.monotonic() + MAX_SECONDS
        headers = {"Host": f"{self.service}.localhost"}
        async with http_client(base_url=self.router_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            sent = 0
            try:
                while time.monotonic() < deadline:
                    sent += 1
                    user = sent % self.users
                    segment = BETA if self.segment_every and user % self.segment_every == 0 else None
                    self._send(client, {**headers, **user_headers(user_key(user), segment, self.segment_header)}, segment)
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
            self.log.append(Served(time.monotonic(), "unreachable", 599, segment, user=headers[USER_HEADER]))
            return
        self.log.append(Served(
            time.monotonic(), response.headers.get("X-Served-Version", "router"), response.status_code, segment,
            user=headers[USER_HEADER], variants=parse_variant_header(response.headers.get(VARIANT_HEADER)),
        ))


def user_headers(user: str, segment: str | None = None, segment_header: str = SEGMENT_HEADER) -> dict[str, str]:
    return {USER_HEADER: user, **({segment_header: segment} if segment else {})}


async def variants_of_users(router_url: str, service: str, flag: str, users: list[str]) -> dict[str, str]:
    """Ask once as each user, through the router: the variant of `flag` that served
    each one (a failed request counts as its status code)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)
    variants: dict[str, str] = {}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            user = queue.get_nowait()
            response = await client.get("/api/photos", headers={"Host": f"{service}.localhost", **user_headers(user)})
            served = parse_variant_header(response.headers.get(VARIANT_HEADER)).get(flag)
            variants[user] = served or str(response.status_code)

    async with http_client(base_url=router_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        await asyncio.gather(*(worker(client) for _ in range(PROBE_CONCURRENCY)))
    return variants
