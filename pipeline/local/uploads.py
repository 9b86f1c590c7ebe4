"""A trickle of photo uploads to the sample gallery through the router: the writes a
migrating release must keep working (the LoadGenerator sends the reads)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from pipeline.http import http_client

UPLOAD_EVERY_SECONDS = 0.25


@dataclass
class Upload:
    at: float
    version: str
    status: int
    photo_id: int | None


@dataclass
class Uploads:
    """POST /api/photos every `every` seconds, each counted with the version that served
    it; an unreachable router counts as 599, like the LoadGenerator's GETs."""

    router_url: str
    service: str
    every: float = UPLOAD_EVERY_SECONDS
    log: list[Upload] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> Uploads:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def failed(self) -> list[Upload]:
        return [upload for upload in self.log if not 200 <= upload.status < 300]

    def since(self, moment: float) -> list[Upload]:
        return [upload for upload in self.log if upload.at >= moment]

    async def _run(self) -> None:
        async with http_client(base_url=self.router_url, timeout=5) as client:
            sent = 0
            while True:
                sent += 1
                await self._one(client, f"photo {sent}")
                await asyncio.sleep(self.every)

    async def _one(self, client: httpx.AsyncClient, title: str) -> None:
        try:
            response = await client.post(
                "/api/photos", json={"title": title}, headers={"Host": f"{self.service}.localhost"}
            )
        except httpx.HTTPError:
            self.log.append(Upload(time.monotonic(), "unreachable", 599, None))
            return
        photo_id = response.json().get("id") if response.status_code == 201 else None
        self.log.append(Upload(time.monotonic(), response.headers.get("X-Served-Version", "router"), response.status_code, photo_id))
