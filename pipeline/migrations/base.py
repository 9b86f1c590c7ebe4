"""The interface of a schema migration tool, as the migration activities see it.

The database's own version record (Alembic's `alembic_version` table, for instance)
is the truth about where a database is: the activities read it before acting, so a
step retried after a lost worker is never applied twice."""

from __future__ import annotations

from typing import Protocol

from pipeline.errors import PermanentTargetError, TargetError


class MigrationTool(Protocol):
    def revisions(self) -> list[str]:
        """Every known revision id, base first."""

    def current(self, url: str) -> str | None:
        """The database's revision; None when it has none (no schema yet)."""

    def upgrade(self, url: str, revision: str) -> bool:
        """Bring the database up to `revision` in one transaction; False (and nothing
        done) when it already is at or after it."""

    def downgrade(self, url: str, revision: str | None) -> bool:
        """Bring the database down to `revision` (None: the base, no schema) in one
        transaction; False (and nothing done) when it already is at or before it."""

    def upgrade_sql(self, from_revision: str | None, to_revision: str) -> str:
        """The SQL that upgrading from `from_revision` (None: the base) to
        `to_revision` runs, without touching any database."""


class UnknownRevision(PermanentTargetError):
    """The revision is not in the service's migration history."""


class MigrationFailed(PermanentTargetError):
    """A revision failed in the database; its transaction rolled back, so the database
    is as it was, and a retry would fail the same way."""


class DatabaseUnreachable(TargetError):
    """The database could not be reached, or the connection was lost mid-step (the
    step's transaction then rolled back). Retried."""


def position(revisions: list[str], revision: str | None) -> int:
    """Where `revision` is in `revisions` (base first): -1 for the base (None)."""
    if revision is None:
        return -1
    if revision not in revisions:
        raise UnknownRevision(f"unknown revision {revision!r}; known: {', '.join(revisions) or 'none'}")
    return revisions.index(revision)


def reached(revisions: list[str], current: str | None, direction: str, revision: str | None) -> bool:
    """Whether a database at `current` already is where a step `direction` to `revision`
    leads: an upgrade never goes down, a downgrade never up."""
    here, there = position(revisions, current), position(revisions, revision)
    return here >= there if direction == "upgrade" else here <= there
