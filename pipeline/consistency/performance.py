"""The migration's performance impact on the gallery: the p95 latency of the queries
its pages run, against the p95 recorded before the expand.

Each representative query is run SAMPLES times after one warm-up (the first run pays
for planning and cold caches, which says nothing about the schema). A query regressed
when its p95 grew more than FACTOR times AND by more than FLOOR_SECONDS: queries of a
few milliseconds double from scheduling noise alone on a busy host, which is not an
impact anyone would roll back for. A query that looks regressed is measured once more
and counts as a violation only if the second measurement confirms it: a single burst
of load on the host (which once made a clean database fail) is not an impact either,
while a real regression (a lost index, a plan that now scans) shows every time.

The photos-of-a-shoot query filters on photos.shoot_id, which the base schema indexes
(revision 0001): a millisecond instead of a scan of every photo, which makes this check
cheap (about 10 ms at 100,000 photos) and its figures steady."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import psycopg

from pipeline.consistency.base import DEFAULT_TIMEOUT_SECONDS, Counted, measured, read_only
from pipeline.models.migration import CheckOutcome

SAMPLES = 5
FACTOR = 2.0
FLOOR_SECONDS = 0.015

REPRESENTATIVE_QUERIES = {
    "photos of a shoot": (
        "SELECT id, title, file_ref FROM photos WHERE shoot_id = (SELECT min(id) FROM shoots) ORDER BY id"
    ),
    "a client's galleries": (
        "SELECT s.id, s.name FROM gallery_access a JOIN shoots s ON s.id = a.shoot_id"
        " WHERE a.client_id = (SELECT min(id) FROM clients) ORDER BY s.id"
    ),
}

P95s = dict[str, float]


@dataclass
class PerformanceImpact:
    """`baseline` is the p95 per query before the expand: given, or recorded by the
    first run (call `record_baseline` to take it again, e.g. right before an expand)."""

    name: str = "gallery.performance_impact"
    runs_alone: bool = True
    """Measured after the other checks, not beside them: their queries would be its latency."""
    baseline: P95s | None = None
    samples: int = SAMPLES
    factor: float = FACTOR
    floor_seconds: float = FLOOR_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    queries: dict[str, str] = field(default_factory=lambda: dict(REPRESENTATIVE_QUERIES))

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        return measured(self.name, lambda: self._count(connection))

    def record_baseline(self, connection: psycopg.Connection) -> CheckOutcome:
        self.baseline = None
        return self.run(connection)

    def _count(self, connection: psycopg.Connection) -> Counted:
        p95s = self._measure(connection)
        if self.baseline is None:
            self.baseline = p95s
            return 0, f"baseline recorded: {_describe(p95s)}"
        suspects = [query for query, p95 in p95s.items() if self._regressed(query, p95)]
        slower = []
        if suspects:
            confirmation = self._measure(connection, suspects)
            slower = [query for query in suspects if self._regressed(query, confirmation[query])]
            p95s.update({query: max(p95s[query], confirmation[query]) for query in slower})
        detail = f"p95 now {_describe(p95s)}; before {_describe(self.baseline)}"
        return len(slower), (f"{len(slower)} queries over {self.factor}x: {', '.join(slower)}; " if slower else "") + detail

    def _regressed(self, query: str, p95: float) -> bool:
        before = self.baseline.get(query) if self.baseline else None
        if before is None:
            return False
        return p95 > self.factor * before and p95 - before > self.floor_seconds

    def _measure(self, connection: psycopg.Connection, names: list[str] | None = None) -> P95s:
        with read_only(connection, self.timeout_seconds) as cursor:
            return {name: self._p95(cursor, sql) for name, sql in self.queries.items() if names is None or name in names}

    def _p95(self, cursor: psycopg.Cursor, sql: str) -> float:
        cursor.execute(sql)
        cursor.fetchall()
        durations = []
        for _ in range(self.samples):
            started = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            durations.append(time.perf_counter() - started)
        if len(durations) < 2:
            return durations[0]
        return statistics.quantiles(durations, n=20, method="inclusive")[-1]


def _describe(p95s: P95s) -> str:
    return ", ".join(f"{query} {p95 * 1000:.1f} ms" for query, p95 in p95s.items())
