"""Run a service's configured consistency checks against one of its databases.

The checks come from the worker's configuration (never from a release request): the
SQL checks listed for the service, plus a built-in family (the sample gallery's).
The sets are kept per (service, database) for the life of the worker, because the
file check remembers which files it has verified and the performance check its
baseline. No URL is ever logged or put in a report: only the database's name."""

from __future__ import annotations

import psycopg

from pipeline.consistency.base import ConsistencyCheck, first_line
from pipeline.consistency.gallery import gallery_checks
from pipeline.consistency.sql import SqlCheck
from pipeline.database import database_url, service_database
from pipeline.errors import PermanentTargetError
from pipeline.models.databases import ServiceDatabase
from pipeline.models.migration import CheckOutcome, ConsistencyReport, Database

CONNECT_TIMEOUT_SECONDS = 5
BUILTIN_CHECKS = {"gallery": gallery_checks}

_builtin_sets: dict[tuple[str, Database, str | None], list[ConsistencyCheck]] = {}


def run_checks(service: str, database: Database) -> ConsistencyReport:
    """Every check of the service, run on `database`. Raises PermanentTargetError only
    when the service has no database configured; a check that fails is reported."""
    config = service_database(service)
    if config is None:
        raise PermanentTargetError(f"service {service!r} has no database configured in the worker")
    return run_all(database_url(service, database), database, configured_checks(service, database, config))


def configured_checks(service: str, database: Database, config: ServiceDatabase) -> list[ConsistencyCheck]:
    """The configured SQL checks, then the built-in ones (kept between runs)."""
    checks: list[ConsistencyCheck] = [SqlCheck(name=check.name, sql=check.sql) for check in config.checks]
    if config.builtin_checks:
        key = (service, database, config.files_dir)
        if key not in _builtin_sets:
            _builtin_sets[key] = BUILTIN_CHECKS[config.builtin_checks](config.files_dir)
        checks += _builtin_sets[key]
    return checks


def run_all(url: str, database: Database, checks: list[ConsistencyCheck]) -> ConsistencyReport:
    """Run `checks` over one connection; a database that cannot be reached makes every
    check inconclusive, each saying why."""
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as error:
        reason = f"could not connect to the {database} database: {first_line(error)}"
        return ConsistencyReport(database=database, checks=[_inconclusive(check, reason) for check in checks])
    with connection:
        return ConsistencyReport(database=database, checks=[check.run(connection) for check in checks])


def _inconclusive(check: ConsistencyCheck, reason: str) -> CheckOutcome:
    return CheckOutcome(name=check.name, violations=None, detail=reason)
