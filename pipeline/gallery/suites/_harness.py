"""What every suite shares: where the target is, and how a check fails."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import httpx


class CheckFailed(Exception):
    pass


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise CheckFailed(reason)


def expect_status(response: httpx.Response, status: int) -> None:
    expect(
        response.status_code == status,
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}, expected {status}",
    )


def run(suite: Callable[[httpx.Client], None]) -> None:
    """Run suite against $TARGET_URL and exit with its verdict."""
    target = os.environ.get("TARGET_URL")
    if not target:
        sys.exit("TARGET_URL is not set")
    try:
        with httpx.Client(base_url=target, timeout=10) as client:
            suite(client)
    except CheckFailed as failure:
        sys.exit(f"FAIL: {failure}")
    except httpx.HTTPError as error:
        sys.exit(f"FAIL: {target} unreachable: {error!r}")
    print("PASS")
