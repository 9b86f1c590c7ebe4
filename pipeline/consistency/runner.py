"""Run a service's configured consistency checks against one of its databases.

The checks come from the worker's configuration (never from a release request): the
SQL checks listed for the service, plus a built-in family (the sample gallery's).
The sets are kept per (service, database) for the life of the worker, because the
file check remembers which files it has verified and the performance check its
baseline. No URL is ever logged or put in a report: only the database's name.

The checks run at the same time, each on its own connection: a run takes as long as
its slowest check instead of their sum."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
    """Run `checks` at the same time, each on a connection of its own, then those that
    run alone (a latency measurement must not share the database with the others);
    outcomes in the order of `checks`. A check that cannot connect, or that fails in
    any way, is inconclusive and says why."""
    together = [check for check in checks if not getattr(check, "runs_alone", False)]
    outcomes: dict[int, CheckOutcome] = {}
    if together:
        with ThreadPoolExecutor(max_workers=len(together), thread_name_prefix="consistency") as pool:
            outcomes.update(zip(map(id, together), pool.map(lambda check: _run(url, database, check), together)))
    outcomes.update((id(check), _run(url, database, check)) for check in checks if id(check) not in outcomes)
    return ConsistencyReport(database=database, checks=[outcomes[id(check)] for check in checks])


def _run(url: str, database: Database, check: ConsistencyCheck) -> CheckOutcome:
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as error:
        return _inconclusive(check, f"could not connect to the {database} database: {first_line(error)}")
    with connection:
        try:
            return check.run(connection)
        except Exception as error:  # a check's bug must not hide the others' outcomes
            return _inconclusive(check, f"could not run: {type(error).__name__}: {first_line(error)}")


def _inconclusive(check: ConsistencyCheck, reason: str) -> CheckOutcome:
    return CheckOutcome(name=check.name, violations=None, detail=reason)
