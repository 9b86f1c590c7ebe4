"""Keeps a local environment's Traefik running, so that its services stay reachable
whether or not a release is running.

    python -m pipeline.local.router_supervisor --router-lock=<state dir>/router.lock \\
        --http-port=8000 --admin-port=8001

LocalEnvironment.ensure_router_running starts it, detached like the environment's
other processes; its `--router-lock=` argument is the marker that finds and stops it.
It holds an exclusive flock on the lock file for its whole life, so of several
started at once all but one exit without touching Traefik. The one left starts
Traefik (or adopts the one a killed supervisor left running), watches it through a
pidfd, and starts it again as soon as it dies, retrying while it cannot start.
SIGTERM stops the supervisor and leaves Traefik running: LocalEnvironment.stop_all
stops it next.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import signal
from pathlib import Path

import structlog

from pipeline.errors import LocalEnvironmentError, PermanentTargetError
from pipeline.local.env import LocalEnvironment, is_ours
from pipeline.logging import configure_logging

log = structlog.get_logger("pipeline.local.router_supervisor")

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 2.0
"""A start costs little, so a short cap brings the router back soon after what
blocked it clears."""


def take_lock(path: Path) -> int | None:
    """The descriptor holding the exclusive lock on path, or None when another
    process holds it. The descriptor is not inheritable, so Traefik never keeps
    the lock alive after the supervisor dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


async def supervise(env: LocalEnvironment, stop: asyncio.Event) -> None:
    """Keep Traefik running until stop is set."""
    pid = env.traefik_pid()
    if pid is not None:
        log.info("traefik.adopted", pid=pid)
    while not stop.is_set():
        if pid is None:
            pid = await _start(env, stop)
        elif await _exits_before(pid, env.traefik_marker, stop):
            log.warning("traefik.exited", pid=pid)
            pid = None


async def _start(env: LocalEnvironment, stop: asyncio.Event) -> int | None:
    """Start Traefik, retrying with capped backoff while it cannot start (its port
    still taken, say); None when stop was set first. Callers waiting for the router
    see it answer as soon as a start succeeds, or time out with Traefik's log named."""
    delay = FIRST_RETRY_SECONDS
    while not stop.is_set():
        try:
            return await env.start_traefik()
        except LocalEnvironmentError as error:
            log.warning("traefik.start_failed", error=str(error), retry_in_seconds=delay)
        await _wait_for(stop, delay)
        delay = min(delay * 2, MAX_RETRY_SECONDS)
    return None


async def _exits_before(pid: int, marker: str, stop: asyncio.Event) -> bool:
    """Whether process pid exits before stop is set (True at once if it is gone)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        # Checked after opening: the pidfd then names this very process, not a recycled pid.
        if not is_ours(pid, marker):
            return True
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(pidfd, exited.set)
        try:
            await _first_of(exited, stop)
        finally:
            loop.remove_reader(pidfd)
        return exited.is_set()
    finally:
        os.close(pidfd)


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()


async def _wait_for(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


async def run(env: LocalEnvironment) -> int:
    lock = take_lock(env.router_lock_file)
    if lock is None:
        log.info("router_supervisor.already_running", lock=str(env.router_lock_file))
        return 0
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    log.info("router_supervisor.started", pid=os.getpid(), state_dir=str(env.state_dir))
    try:
        await supervise(env, stop)
    except PermanentTargetError as error:  # no traefik binary
        log.error("router_supervisor.gave_up", error=str(error))
        return 1
    log.info("router_supervisor.stopped")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router-lock", type=Path, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    arguments = parser.parse_args()
    configure_logging()
    env = LocalEnvironment(arguments.router_lock.parent, arguments.http_port, arguments.admin_port)
    raise SystemExit(asyncio.run(run(env)))


if __name__ == "__main__":
    main()
