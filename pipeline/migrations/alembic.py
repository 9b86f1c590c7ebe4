"""The Alembic implementation of the migration tool, through Alembic's Python API.

Each upgrade or downgrade runs in one PostgreSQL transaction that this module opens
and hands to the revisions' env.py (as `config.attributes["connection"]`, Alembic's
documented recipe): PostgreSQL's DDL is transactional, so a failing revision leaves
both the schema and `alembic_version` as they were. Inside it, an advisory lock keeps
two attempts of the same step (a worker presumed lost, and its retry) from both
applying it, and the version is read again under the lock.

Errors never carry the URL: unreachable databases and failing revisions are reported
by the database's own message (pipeline/migrations/base.py's errors)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pipeline.errors import PermanentTargetError
from pipeline.migrations.base import DatabaseUnreachable, MigrationFailed, UnknownRevision

MIGRATION_LOCK = 0x6D696772
"""The advisory lock id every migration of a database takes (b"migr")."""
OFFLINE_DIALECT_URL = "postgresql+psycopg://"


class AlembicTool:
    def __init__(self, script_location: str | Path):
        self.script_location = str(script_location)

    def revisions(self) -> list[str]:
        walked = [script.revision for script in self._scripts().walk_revisions()]
        return list(reversed(walked))

    def current(self, url: str) -> str | None:
        with _transaction(url) as connection:
            return _current(connection)

    def upgrade(self, url: str, revision: str) -> bool:
        target = self._position(revision)
        return self._migrate(url, lambda position: position < target, command.upgrade, revision)

    def downgrade(self, url: str, revision: str | None) -> bool:
        target = self._position(revision)
        return self._migrate(url, lambda position: position > target, command.downgrade, revision or "base")

    def upgrade_sql(self, from_revision: str | None, to_revision: str) -> str:
        for revision in (from_revision, to_revision):
            self._position(revision)
        output = io.StringIO()
        config = self._config(output)
        config.set_main_option("sqlalchemy.url", OFFLINE_DIALECT_URL)
        span = f"{from_revision}:{to_revision}" if from_revision else to_revision
        command.upgrade(config, span, sql=True)
        return output.getvalue()

    def _migrate(self, url: str, needed: Callable[[int], bool], step: Callable[..., None], revision: str) -> bool:
        """Run `step` to `revision` unless the database's position (read under the
        migration lock, in the step's own transaction) makes it unneeded."""
        with _transaction(url) as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": MIGRATION_LOCK})
            if not needed(self._position(_current(connection))):
                return False
            config = self._config()
            config.attributes["connection"] = connection
            with _failures_named(revision):
                step(config, revision)
            return True

    def _position(self, revision: str | None) -> int:
        """Where `revision` is in the history: -1 for the base (None)."""
        if revision is None:
            return -1
        known = self.revisions()
        if revision not in known:
            raise UnknownRevision(f"unknown revision {revision!r}; known: {', '.join(known) or 'none'}")
        return known.index(revision)

    def _config(self, output: io.StringIO | None = None) -> Config:
        config = Config(output_buffer=output) if output else Config()
        config.set_main_option("script_location", self.script_location)
        return config

    def _scripts(self) -> ScriptDirectory:
        try:
            return ScriptDirectory.from_config(self._config())
        except CommandError as error:
            raise PermanentTargetError(f"no Alembic revisions at {self.script_location}: {error}") from None


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def sqlalchemy_url(url: str) -> str:
    """The URL for SQLAlchemy's psycopg 3 driver (a bare postgresql:// means psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    """One connection in one transaction, committed when the block succeeds."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with _unreachable_named():
            connection = engine.connect()
        with connection, connection.begin():
            yield connection
    finally:
        engine.dispose()


@contextmanager
def _unreachable_named() -> Iterator[None]:
    try:
        yield
    except DBAPIError as error:
        raise DatabaseUnreachable(f"database unreachable: {_message(error)}") from None


@contextmanager
def _failures_named(revision: str) -> Iterator[None]:
    """A lost connection is worth a retry (the transaction rolled back); any other
    database error is the revision's own, which no retry fixes."""
    try:
        yield
    except DBAPIError as error:
        if error.connection_invalidated:
            raise DatabaseUnreachable(f"connection lost while migrating to {revision}: {_message(error)}") from None
        raise MigrationFailed(f"migration to {revision} failed, nothing changed: {_message(error)}") from None


def _message(error: DBAPIError) -> str:
    """The database's own words, without SQLAlchemy's wrapping (which repeats the SQL
    and its parameters)."""
    return " ".join(str(error.orig).split())
