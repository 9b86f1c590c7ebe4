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
- "DatabaseUnreachable": retried.

On the kubernetes target, a service whose `migrations` has a `job` is migrated by a
Job from the release's image (pipeline/migrations/kubernetes_job.py); the worker reads
the version table itself before (to skip a step already done) and after (to check
that the Job got the database where it was asked to). A failed Job is "MigrationFailed";
an unreachable API server is retried."""

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
from pipeline.migrations.base import MigrationFailed, MigrationTool, UnknownRevision, reached
from pipeline.migrations.kubernetes_job import JobStep, MigrationJobs, recorded_before
from pipeline.models import MigrationRequest, MigrationResult
from pipeline.models.databases import MigrationJobConfig, MigrationsConfig

T = TypeVar("T")


@activity.defn
async def migrate(request: MigrationRequest) -> MigrationResult:
    """Bring the request's database to `revision` (upgrade or downgrade); `changed`
    False when it already was there."""
    started = time.monotonic()
    with _migration_errors():
        migrations = _migrations(request.ref.service)
        tool = _tool(migrations)
        url = database_url(request.ref.service, request.database)
        if request.ref.target == "kubernetes" and migrations.job is not None:
            before, changed, after = await _in_job(request, migrations.job, tool, url)
        else:
            before, changed, after = await _in_process(request, tool, url)
    release_logger(request.ref).info(
        "migrated", database=request.database, direction=request.direction, before=before, after=after, changed=changed
    )
    return MigrationResult(
        database=request.database, before=before, after=after, changed=changed, seconds=time.monotonic() - started
    )


async def _in_process(request: MigrationRequest, tool: MigrationTool, url: str) -> tuple[str | None, bool, str | None]:
    before = await _current(tool, url, request.database)
    changed = await _in_thread(_step(tool, request), url, request.revision, detail=_describe(request))
    return before, changed, await _current(tool, url, request.database)


async def _in_job(
    request: MigrationRequest, job: MigrationJobConfig, tool: MigrationTool, url: str
) -> tuple[str | None, bool, str | None]:
    """The step run by a Job; an attempt retried after a lost worker waits on the Job
    its predecessor made instead of making another."""
    if request.direction == "upgrade":
        _upgrade_target(request)
    revisions = await _in_thread(tool.revisions, detail="reading the revisions")
    step = _job_step(request)
    jobs = MigrationJobs.from_env()
    namespace = jobs.namespace(request.database, job)
    live = await heartbeating(jobs.find(namespace, step.name), f"looking for Job {namespace}/{step.name}")
    if live is None:
        before = await _current(tool, url, request.database)
        if reached(revisions, before, request.direction, request.revision):
            return before, False, before
        live = await heartbeating(jobs.create(namespace, step, job, before), f"creating Job {namespace}/{step.name}")
        release_logger(request.ref).info("migration job created", job=f"{namespace}/{step.name}",
                                         database=request.database, direction=request.direction, version=step.version)
    await heartbeating(jobs.wait(namespace, step.name, activity.heartbeat), f"waiting for Job {namespace}/{step.name}")
    after = await _current(tool, url, request.database)
    if not reached(revisions, after, request.direction, request.revision):
        raise MigrationFailed(f"migration Job {namespace}/{step.name} succeeded, but {request.database} is at "
                              f"{after or 'base'}, not {request.revision or 'base'}: check the job's command")
    return recorded_before(live), True, after


def _job_step(request: MigrationRequest) -> JobStep:
    if not request.version:
        raise PermanentTargetError("a migration Job runs the release's image, but the request names no version")
    info = activity.info()
    return JobStep(
        release_id=request.ref.release_id, service=request.ref.service, database=request.database,
        direction=request.direction, revision=request.revision, version=request.version,
        scheduled_as=f"{info.workflow_run_id}/{info.activity_id}",
    )


@activity.defn
async def check_expand(request: MigrationRequest) -> list[str]:
    """Why upgrading production from its current revision to `revision` could break
    the version running on it (pipeline/decisions/schema_compat.py); empty when it
    cannot."""
    with _migration_errors():
        tool = _tool(_migrations(request.ref.service))
        target = _upgrade_target(request)
        url = database_url(request.ref.service, "production")
        current = await _current(tool, url, "production")
        sql = await _in_thread(tool.upgrade_sql, current, target, detail=f"reading the SQL of {target}")
    problems = expand_problems(sql)
    release_logger(request.ref).info("expand checked", current=current, revision=target, problems=len(problems))
    return problems


def _migrations(service: str) -> MigrationsConfig:
    """How the service's schema is migrated, from the worker's databases file."""
    configured = service_database(service)
    if configured is None or configured.migrations is None:
        raise PermanentTargetError(f"{service} has no migrations configured for this worker")
    return configured.migrations


def _tool(migrations: MigrationsConfig) -> MigrationTool:
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


async def _current(tool: MigrationTool, url: str, database: str) -> str | None:
    return await _in_thread(tool.current, url, detail=f"reading the {database} revision")


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
