"""Feature flags on the real local stack, for the live tests and benchmarks/flags.py:
writing stages to the local flag store as a rollout would, and counting what the
services serve per user through the router."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

from pipeline.flags.changes import apply_stage, read_flag
from pipeline.flags.local_file import LocalFileStore, flags_file
from pipeline.local.devstack import Stack
from pipeline.local.loadgen import LoadGenerator, user_key, variants_of_users
from pipeline.models.flags import FlagRef, FlagSetting, FlagStageRequest
from tests.helpers.real_stack import SERVICE

USERS = [user_key(index) for index in range(4000)]
PROBE = USERS[:200]
RELOAD_WITHIN_SECONDS = 10.0


def store(stack: Stack) -> LocalFileStore:
    """The production flags of the stack's local environment (what its canary and stable read)."""
    return LocalFileStore(flags_file(stack.local.state_dir, "production"), "production")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Stages:
    """Writes flag stages as one rollout would (increasing sequence numbers, and a
    kill before it started does not stop it)."""

    def __init__(self) -> None:
        self.rollout_id, self.sequence = f"live-{uuid.uuid4().hex[:6]}", 0

    async def serve(self, stack: Stack, flag: str, percentage: int, segments: list[str] | None = None) -> None:
        self.sequence += 1
        since = (await read_flag(store(stack), flag)).revision
        await apply_stage(store(stack), FlagStageRequest(
            ref=FlagRef(flag=flag), variants={"on": True, "off": False},
            setting=FlagSetting(segments=segments or [], percentage=percentage),
            actor="test", reason="live flags", rollout_id=self.rollout_id, sequence=self.sequence, since_revision=since,
        ), now=utc_now())


async def served(stack: Stack, flag: str, users: list[str]) -> dict[str, str]:
    """The variant of `flag` that served each user, through the router."""
    return await variants_of_users(stack.local.http_url, SERVICE, flag, users)


def share_on(variants: dict[str, str]) -> float:
    return 100 * Counter(variants.values())["on"] / len(variants)


async def served_once_reloaded(stack: Stack, flag: str, percentage: int) -> dict[str, str]:
    """The variant each of USERS gets, once the services serve about `percentage`
    (the file resolver re-reads the file within about half a second)."""
    deadline = time.monotonic() + RELOAD_WITHIN_SECONDS
    while abs(share_on(await served(stack, flag, PROBE)) - percentage) > 10:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the services did not serve about {percentage}% of {flag} within {RELOAD_WITHIN_SECONDS}s")
        await asyncio.sleep(0.2)
    return await served(stack, flag, USERS)


async def last_served_on(load: LoadGenerator, flag: str, since: float, quiet_seconds: float = 2.0, within: float = 15.0) -> float:
    """Seconds from `since` (time.monotonic()) to the last response of `load` served
    with `flag` on, once none came for `quiet_seconds` (0 when none came after `since`);
    TimeoutError when one still comes `within` seconds from now."""
    deadline = time.monotonic() + within
    while True:
        last_on = max((s.at for s in load.log if s.at >= since and s.variants.get(flag) == "on"), default=since)
        if time.monotonic() - last_on >= quiet_seconds:
            return last_on - since
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} still served on {within}s after it was turned off")
        await asyncio.sleep(0.1)


async def all_served_on(load: LoadGenerator, flag: str, count: int = 20, within: float = 15.0) -> None:
    """Wait until the last `count` responses of `load` were all served with `flag` on."""
    deadline = time.monotonic() + within
    while not (len(load.log) >= count and all(s.variants.get(flag) == "on" for s in load.log[-count:])):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} not served on to every user within {within}s")
        await asyncio.sleep(0.1)
