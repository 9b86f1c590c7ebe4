"""The gallery's file-reference check: every photo's `file_ref` must name a row of
`files`, a file on disk under the storage directory, and bytes of the recorded size
whose sha256 is the recorded one.

Reading every file's bytes, or even stat'ing every file (0.6 s for 100,000), on every
run does not fit a release's analysis interval (100,000 photos in under a second, the
worker's first run included), so the check is layered; what each layer guarantees:
- every reference, every run, cold worker or warm: the `files` row exists and the file
  exists, from one query and one listing of the storage directory's regular files
  (walked while the query runs, no stat per file, a directory's entries reused while
  its mtime is unchanged: see storage.SETTLED_NS), compared as sets; a reference the
  listing does not show (a file written after the walk, a path through a symlinked
  directory) is stat'ed on its own, so a missing file is always found;
- sizes: the listed files are split into ceil(listed files / STAT_SLICE) turns by the
  hash of their name, and each run stats one turn's files, the first run included:
  every file's size is compared at least once in any that many consecutive runs (10 at
  100,000 files) while the number of turns stays the same, so a file truncated in place
  is found within them; a file hashed (below) has its size checked that run too;
- checksums are kept per worker process: a file whose bytes were hashed and matched is
  not read again while its recorded size and sha256 and (when stat'ed) its mtime stay
  the same; every file that is new or changed since it was last hashed is hashed,
  newest photo first (the files a canary just wrote come first), up to
  HASH_BUDGET_FILES per run; a cold worker works through the backlog over the next
  ceil(files / HASH_BUDGET_FILES) runs (50 at 100,000) and the detail says how many
  still wait;
- a random sample of already-verified files is re-hashed each run, which catches bytes
  changed behind an unchanged size and mtime (bit rot, a restored mtime).

Photo counts are asked of the database only for the references found broken, so a
clean run moves one row per photo and nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline.consistency.base import DEFAULT_TIMEOUT_SECONDS, Counted, measured, read_only
from pipeline.consistency.storage import Seen, Storage
from pipeline.models.migration import CheckOutcome

HASH_BUDGET_FILES = 2000
RESAMPLE_FILES = 200
EXAMPLES = 3

STAT_SLICE = 10_000
"""Files whose size and mtime are read each run, in rotation (see the module doc)."""

REFERENCES_SQL = "SELECT p.file_ref, f.size || ' ' || f.sha256 FROM photos p LEFT JOIN files f ON f.ref = p.file_ref"
"""What the disk is compared to, as one "size sha256" text (NULL without a `files` row),
so that a run finds what changed since the last by comparing dictionaries, without a
Python step per row. One row per photo (the dictionary keeps each file once): a photo
has its own file, and a DISTINCT made the query a quarter slower."""

WITHOUT_ROW_SQL = "SELECT DISTINCT file_ref FROM photos p WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.ref = p.file_ref)"
"""Without a storage directory: the references that have no `files` row."""

NEWEST_SQL = "SELECT file_ref FROM photos ORDER BY id DESC"
"""Referenced files, newest photo first: read only as far as the hash budget needs."""

PHOTO_COUNTS_SQL = "SELECT file_ref, count(*) FROM photos WHERE file_ref = ANY(%s) GROUP BY file_ref"


@dataclass
class Findings:
    """The problem of each broken reference; photos per problem once counted."""

    problems: dict[str, str] = field(default_factory=dict)
    awaiting_checksum: int = 0

    def add(self, refs: Iterable[str], problem: str) -> None:
        for ref in refs:
            self.problems.setdefault(ref, problem)

    def counted(self, photos: dict[str, int]) -> Counted:
        per_problem: dict[str, int] = {}
        for ref in sorted(self.problems):
            per_problem[self.problems[ref]] = per_problem.get(self.problems[ref], 0) + photos.get(ref, 0)
        violations = sum(per_problem.values())
        problems = ", ".join(f"{count} {problem}" for problem, count in per_problem.items()) or "none"
        detail = f"{violations} photos with a broken file reference ({problems})"
        if self.problems:
            detail += f"; e.g. {', '.join(sorted(self.problems)[:EXAMPLES])}"
        if self.awaiting_checksum:
            detail += f"; {self.awaiting_checksum} files not yet checksummed (hashed over the next runs)"
        return violations, detail


class FileReferences:
    """Stateful per worker: remembers which files' bytes were verified (see module doc)."""

    name = "gallery.file_references"

    def __init__(self, files_dir: str | Path | None, hash_budget: int = HASH_BUDGET_FILES,
                 resample: int = RESAMPLE_FILES, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                 stat_slice: int = STAT_SLICE):
        self.storage = Storage(files_dir) if files_dir is not None else None
        """None (no storage directory configured, e.g. on Kubernetes): only the `files` rows are checked."""
        self.hash_budget = hash_budget
        self.resample = resample
        self.timeout_seconds = timeout_seconds
        self.stat_slice = stat_slice
        self._verified: dict[str, str] = {}
        """The recorded "size sha256" of each file whose bytes matched it."""
        self._mtimes: dict[str, int] = {}
        """Each verified file's mtime (ns) when it was hashed."""
        self._run = 0
        self._random = random.Random()

    def run(self, connection: psycopg.Connection) -> CheckOutcome:
        return measured(self.name, lambda: self._count(connection))

    def _count(self, connection: psycopg.Connection) -> Counted:
        findings = Findings()
        if self.storage is None:
            with read_only(connection, self.timeout_seconds) as cursor:
                cursor.execute(WITHOUT_ROW_SQL)
                findings.add((ref for ref, in cursor.fetchall()), "not in the files table")
        else:
            self._compare_with_disk(connection, findings)
        return findings.counted(self._photo_counts(connection, findings))

    def _compare_with_disk(self, connection: psycopg.Connection, findings: Findings) -> None:
        """List the directory and stat this run's slice while the query runs, then compare."""
        self.storage.ensure_exists()
        self._run += 1
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="files-survey") as pool:
            surveying = pool.submit(self.storage.survey, self._run, self.stat_slice)
            with read_only(connection, self.timeout_seconds) as cursor:
                cursor.execute(REFERENCES_SQL)
                recorded: dict[str, str | None] = dict(cursor.fetchall())
            survey = surveying.result()
        if None in recorded.values():
            findings.add([ref for ref, expected in recorded.items() if expected is None], "not in the files table")
        for ref in findings.problems:
            del recorded[ref]
        if not recorded.keys() >= self._verified.keys():
            self._forget(self._verified.keys() - recorded.keys())
        seen = self.storage.stat_unlisted(() if survey.names >= recorded.keys() else recorded.keys() - survey.names)
        seen.update((ref, survey.seen[ref]) for ref in survey.seen.keys() & recorded.keys())
        self._check_sizes(recorded, seen, findings)
        for ref in findings.problems.keys() & recorded.keys():
            del recorded[ref]
        self._check_bytes(connection, recorded, findings)

    def _forget(self, refs: Iterable[str]) -> None:
        """Drop what was verified of `refs`: they are hashed again when next seen."""
        for ref in refs:
            self._verified.pop(ref, None)
            self._mtimes.pop(ref, None)

    def _check_sizes(self, recorded: dict[str, str], seen: dict[str, Seen], findings: Findings) -> None:
        """Compare what was stat'ed (this run's slice, and every file the listing did not
        show): no file is a violation, and so is a wrong size; an mtime other than the one
        hashed makes the file's bytes unverified again."""
        changed = []
        for ref, size_and_mtime in seen.items():
            if size_and_mtime is None:
                findings.add((ref,), "missing on disk")
            elif size_and_mtime[0] != int(recorded[ref].partition(" ")[0]):
                findings.add((ref,), "of the wrong size")
            elif self._mtimes.get(ref, size_and_mtime[1]) == size_and_mtime[1]:
                continue
            changed.append(ref)
        self._forget(changed)

    def _check_bytes(self, connection: psycopg.Connection, recorded: dict[str, str], findings: Findings) -> None:
        """Hash what is not verified in its recorded state (newest photo first, within the
        budget) and a random sample of what is."""
        self._forget({ref for ref, _ in self._verified.items() - recorded.items()})
        unverified = recorded.keys() - self._verified.keys()
        findings.awaiting_checksum = max(0, len(unverified) - self.hash_budget)
        to_hash = self._newest(connection, unverified) if findings.awaiting_checksum else list(unverified)
        to_hash += self._random.sample(list(self._verified), min(self.resample, len(self._verified)))
        for ref, (problem, mtime) in self.storage.hash_all({ref: recorded[ref] for ref in to_hash}).items():
            if problem is None:
                self._verified[ref] = recorded[ref]
                self._mtimes[ref] = mtime
            else:
                self._forget((ref,))
                findings.add((ref,), problem)

    def _newest(self, connection: psycopg.Connection, unverified: set[str]) -> list[str]:
        """The hash budget's worth of `unverified`, newest photo first, reading photos
        newest first only as far as needed (a server-side cursor)."""
        chosen: dict[str, None] = {}
        with read_only(connection, self.timeout_seconds), connection.cursor(name="newest_photos") as photos:
            photos.execute(NEWEST_SQL)
            while len(chosen) < self.hash_budget and (batch := photos.fetchmany(4 * self.hash_budget)):
                chosen.update((ref, None) for ref, in batch if ref in unverified)
        return list(chosen)[: self.hash_budget]

    def _photo_counts(self, connection: psycopg.Connection, findings: Findings) -> dict[str, int]:
        """The photos of each broken reference (few, and asked only when there are)."""
        if not findings.problems:
            return {}
        with read_only(connection, self.timeout_seconds) as cursor:
            cursor.execute(PHOTO_COUNTS_SQL, (sorted(findings.problems),))
            return dict(cursor.fetchall())
