"""A consistency check from the worker's configuration: SQL returning one integer,
the number of violations."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pipeline.consistency.base import DEFAULT_TIMEOUT_SECONDS, Counted, measured, read_only, single_integer
from pipeline.models.migration import CheckOutcome


@dataclass(frozen=True)
class SqlCheck:
    name: str
    sql: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    what: str = "violations"
    """How the detail line names what is counted (a built-in check says what it found)."""

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        return measured(self.name, lambda: self._count(connection))

    def _count(self, connection: psycopg.Connection) -> Counted:
        with read_only(connection, self.timeout_seconds) as cursor:
            cursor.execute(self.sql)
            violations = single_integer(cursor)
        return violations, f"{violations} {self.what}"
