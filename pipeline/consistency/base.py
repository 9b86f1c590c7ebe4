"""What every consistency check is, and the one way a check's failure to run is reported.

A check receives an autocommit connection and runs its queries in a read-only
transaction of its own with a statement timeout: a check can neither change data
nor hang a release, and one check's failure (a syntax error, a timeout) leaves the
connection usable for the next."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import psycopg

from pipeline.logging import Redactor
from pipeline.models.migration import CheckOutcome

DEFAULT_TIMEOUT_SECONDS = 5.0


class ConsistencyCheck(Protocol):
    """A check may also say `runs_alone = True` (one that measures latency): the runner
    then runs it after the others rather than beside them."""

    name: str

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        """Count the violations, or return violations=None with the reason it could not."""
        ...


Counted = tuple[int, str]
"""A check's finding: the number of violations and a line saying what they are."""


def measured(name: str, count: Callable[[], Counted]) -> CheckOutcome:
    """Run `count`, timing it; a database error (down, bad SQL, timeout) or an unusable
    result becomes an inconclusive outcome naming the reason, never a pass."""
    started = time.perf_counter()
    try:
        violations, detail = count()
    except (psycopg.Error, ValueError, OSError) as error:
        return CheckOutcome(name=name, violations=None, detail=f"could not run: {first_line(error)}",
                            seconds=time.perf_counter() - started)
    return CheckOutcome(name=name, violations=violations, detail=detail, seconds=time.perf_counter() - started)


@contextmanager
def read_only(connection: psycopg.Connection, timeout_seconds: float) -> Iterator[psycopg.Cursor]:
    """A cursor in a read-only transaction whose statements are cancelled after
    `timeout_seconds`; the transaction ends (rolled back on error) when the block does."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_seconds * 1000))}")
        yield cursor


def single_integer(cursor: psycopg.Cursor) -> int:
    """The one integer a counting query returns; anything else is a broken check."""
    rows = cursor.fetchall()
    if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], int) or isinstance(rows[0][0], bool):
        raise ValueError(f"expected one integer, got {rows[:2]!r}")
    if rows[0][0] < 0:
        raise ValueError(f"a violation count cannot be negative: {rows[0][0]}")
    return rows[0][0]


def first_line(error: Exception) -> str:
    """The error's first line, any URL credentials blanked (psycopg quotes a bad
    connection string back)."""
    text = str(error).strip() or type(error).__name__
    return Redactor().redact(text.splitlines()[0])
