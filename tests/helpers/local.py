"""This machine, for tests on real processes: free ports, a LocalEnvironment on them,
and what /proc says about a process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from pipeline.local.env import LocalEnvironment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_environment(state_dir: Path) -> LocalEnvironment:
    """A local environment in `state_dir`, its router on free ports."""
    return LocalEnvironment(state_dir=state_dir, http_port=free_port(), admin_port=free_port())


def is_alive(pid: int) -> bool:
    """True while the process runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if entry)


async def wait_until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
