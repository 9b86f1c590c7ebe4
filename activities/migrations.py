"""Activities that migrate a service's schema and check that an expand is safe.

Both find the database and the migration tool in the worker's databases file
(pipeline/database.py), never in the request. The tool's own version table is the
truth: `migrate` reads it before acting and the tool re-reads it under a lock inside
the step's transaction, so a retried step is never applied twice. Alembic blocks, so
it runs in a thread while the activity heartbeats.

Errors, as the workflow sees them (ApplicationError.type):
- "UnknownRevision", "MigrationFailed" (the database's error; the transaction rolled
  back, so nothing changed) and "PermanentTargetError" (no database or migrations
  configured for the service): not retried;
- "DatabaseUnreachable": retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from pipeline.catalog import MIGRATION_TOOLS
from pipeline.database import database_url, service_database
from pipeline.decisions.schema_compat import expand_problems
from pipeline.errors import PermanentTargetError
from pipeline.logging import release_logger
from pipeline.migrations.base import MigrationTool, UnknownRevision
from pipeline.models import MigrationRequest, MigrationResult

T = TypeVar("T")


@activity.defn
async def migrate(request: MigrationRequest) -> MigrationResult:
    """Bring the request's database to `revision` (upgrade or downgrade); `changed`
    False when it already was there."""
    started = time.monotonic()
    with _migration_errors():
        tool = _tool(request.ref.service)
        url = database_url(request.ref.service, request.database)
        before = await _in_thread(tool.current, url, detail=f"reading the {request.database} revision")
        changed = await _in_thread(_step(tool, request), url, request.revision, detail=_describe(request))
        after = await _in_thread(tool.current, url, detail=f"reading the {request.database} revision")
    release_logger(request.ref).info(
        "migrated", database=request.database, direction=request.direction, before=before, after=after, changed=changed
    )
    return MigrationResult(
        database=request.database, before=before, after=after, changed=changed, seconds=time.monotonic() - started
    )


@activity.defn
async def check_expand(request: MigrationRequest) -> list[str]:
    """Why upgrading production from its current revision to `revision` could break
    the version running on it (pipeline/decisions/schema_compat.py); empty when it
    cannot."""
    with _migration_errors():
        tool = _tool(request.ref.service)
        target = _upgrade_target(request)
        url = database_url(request.ref.service, "production")
        current = await _in_thread(tool.current, url, detail="reading the production revision")
        sql = await _in_thread(tool.upgrade_sql, current, target, detail=f"reading the SQL of {target}")
    problems = expand_problems(sql)
    release_logger(request.ref).info("expand checked", current=current, revision=target, problems=len(problems))
    return problems


def _tool(service: str) -> MigrationTool:
    """The service's migration tool, from the worker's databases file."""
    configured = service_database(service)
    if configured is None or configured.migrations is None:
        raise PermanentTargetError(f"{service} has no migrations configured for this worker")
    migrations = configured.migrations
    return MIGRATION_TOOLS[migrations.tool].build(migrations.script_location)


def _step(tool: MigrationTool, request: MigrationRequest) -> Callable[[str, str | None], bool]:
    if request.direction == "downgrade":
        return tool.downgrade
    _upgrade_target(request)
    return tool.upgrade


def _upgrade_target(request: MigrationRequest) -> str:
    if request.revision is None:
        raise UnknownRevision("an upgrade needs a revision (None is the base, reached by a downgrade)")
    return request.revision


def _describe(request: MigrationRequest) -> str:
    return f"{request.direction} of {request.database} to {request.revision or 'base'}"


async def _in_thread(blocking: Callable[..., T], *args: object, detail: str) -> T:
    """Run a blocking call in a thread, heartbeating meanwhile."""
    return await heartbeating(asyncio.to_thread(blocking, *args), detail)


@contextmanager
def _migration_errors() -> Iterator[None]:
    """Permanent failures fail the activity at once, typed by their class so that
    the workflow can tell an unknown revision from a failed one; the others (an
    unreachable database) are left to Temporal's retries."""
    try:
        yield
    except PermanentTargetError as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error
